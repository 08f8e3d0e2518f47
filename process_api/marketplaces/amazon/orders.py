"""Amazon orders (Orders API 2026-01-01) mapped to canonical order submissions, and the Amazon
fulfilment states mapped to what the gateway does with them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any

from pydantic import ValidationError

from contracts import OrderLine, OrderSubmission
from contracts.customer import Address, Customer
from contracts.money import Money

# Pending orders already count against stock on Amazon's side: hold stock with an expiry.
PENDING_STATES = frozenset({"PENDING_AVAILABILITY", "PENDING"})
# Confirmed by Amazon: accept (validate and reserve for good). A first sight of a (partially)
# shipped merchant order still needs its stock accounted for, so it is taken in the same way.
CONFIRMED_STATES = frozenset({"UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"})
CANCELLED_STATES = frozenset({"CANCELLED", "UNFULFILLABLE"})
ORDER_STATES = PENDING_STATES | CONFIRMED_STATES | CANCELLED_STATES


class Action(Enum):
    HOLD = "hold"
    """Record the order as pending: stock reserved until the pending expiry."""
    ACCEPT = "accept"
    """Record (or confirm) the order and validate it."""
    CANCEL = "cancel"
    """Amazon cancelled it: cancel the canonical order, releasing its stock."""


class UnmappableOrder(ValueError):
    """An Amazon order the gateway cannot express canonically (reason in the message)."""


def action_for(status: str) -> Action:
    if status in PENDING_STATES:
        return Action.HOLD
    if status in CANCELLED_STATES:
        return Action.CANCEL
    if status in CONFIRMED_STATES:
        return Action.ACCEPT
    raise UnmappableOrder(f"unknown Amazon fulfillmentStatus {status!r}")


def fulfilment_status(order: dict[str, Any]) -> str:
    status = (order.get("fulfillment") or {}).get("fulfillmentStatus")
    if not isinstance(status, str):
        raise UnmappableOrder(f"order {order.get('orderId')!r} has no fulfillmentStatus")
    return status


def last_updated(order: dict[str, Any]) -> datetime | None:
    raw = order.get("lastUpdatedTime")
    return datetime.fromisoformat(raw) if isinstance(raw, str) else None


def unpriced_skus(order: dict[str, Any]) -> set[str]:
    """SKUs of items Amazon sent without a unit price (it leaves them out while pending)."""
    return {
        str((item.get("product") or {}).get("sellerSku"))
        for item in order.get("orderItems") or []
        if not ((item.get("product") or {}).get("price") or {}).get("unitPrice")
    }


def to_submission(
    order: dict[str, Any], *, channel: str, list_prices: Mapping[str, Money] | None = None
) -> OrderSubmission:
    """The canonical submission of one Amazon order; UnmappableOrder when it cannot be one.

    Items without a unit price take the SKU's list price from list_prices (the ERP's, which
    validation compares against), else zero."""
    order_id = order.get("orderId")
    if not isinstance(order_id, str) or not order_id:
        raise UnmappableOrder("an order without orderId")
    items = order.get("orderItems") or []
    if not items:
        raise UnmappableOrder(f"order {order_id} has no orderItems")
    currency = _currency(order)
    try:
        lines = [_line(item, currency, list_prices or {}) for item in items]
        recipient = (order.get("recipient") or {}).get("deliveryAddress") or {}
        address = _address(recipient)
        customer = _customer(order.get("buyer") or {}, recipient, address)
        created = order.get("createdTime")
        return OrderSubmission(
            channel=channel,
            channel_order_id=order_id,
            currency=currency,
            customer=customer,
            shipping_address=address,
            lines=lines,
            placed_at=datetime.fromisoformat(created) if isinstance(created, str) else None,
            pending=fulfilment_status(order) in PENDING_STATES,
        )
    except (ValidationError, ValueError, InvalidOperation, KeyError, TypeError) as exc:
        if isinstance(exc, UnmappableOrder):
            raise
        raise UnmappableOrder(f"order {order_id}: {exc}") from exc


def _currency(order: dict[str, Any]) -> str:
    for item in order.get("orderItems") or []:
        price = ((item.get("product") or {}).get("price") or {}).get("unitPrice")
        if price and price.get("currencyCode"):
            return str(price["currencyCode"])
    total = (order.get("proceeds") or {}).get("grandTotal") or {}
    if total.get("currencyCode"):
        return str(total["currencyCode"])
    raise UnmappableOrder(f"order {order.get('orderId')} states no currency")


def _line(item: dict[str, Any], currency: str, list_prices: Mapping[str, Money]) -> OrderLine:
    product = item.get("product") or {}
    sku = str(product["sellerSku"])
    price = (product.get("price") or {}).get("unitPrice")
    if price:
        unit_price = Money(
            amount=Decimal(str(price["amount"])), currency=price.get("currencyCode") or currency
        )
    else:
        # Amazon leaves prices out while an order is pending: the order holds stock at the
        # list price, the price the ERP validates it against once Amazon confirms it.
        listed = list_prices.get(sku)
        unit_price = (
            listed if listed is not None and listed.currency == currency else Money.zero(currency)
        )
    return OrderLine(
        line_id=str(item["orderItemId"]),
        sku=sku,
        quantity=int(item["quantityOrdered"]),
        unit_price=unit_price,
    )


def _address(raw: dict[str, Any]) -> Address | None:
    """The delivery address, or None where Amazon withholds parts of it (without access to
    restricted data it sends only city, region, postal code and country)."""
    try:
        return Address(
            name=raw.get("name") or raw.get("companyName") or "",
            line1=raw.get("addressLine1") or "",
            line2=" ".join(p for p in (raw.get("addressLine2"), raw.get("addressLine3")) if p)
            or None,
            city=raw.get("city") or "",
            region=raw.get("stateOrRegion") or None,
            postal_code=raw.get("postalCode") or "",
            country=raw.get("countryCode") or "",
        )
    except ValidationError:
        return None


def _customer(
    buyer: dict[str, Any], recipient: dict[str, Any], address: Address | None
) -> Customer | None:
    """The buyer as far as Amazon shares it; None when it shares nothing usable."""
    name = buyer.get("buyerName") or (address.name if address else None)
    if not name:
        return None
    try:
        return Customer(
            name=name,
            email=buyer.get("buyerEmail") or None,
            phone=recipient.get("phone") or None,
            shipping_address=address,
        )
    except ValidationError:
        return Customer(name=name, shipping_address=address)
