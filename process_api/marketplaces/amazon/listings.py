"""Listings attributes Amazon takes for availability and prices, as JSON Patch operations for
patchListingsItem and as messages of a JSON_LISTINGS_FEED document (schema v2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from process_api.marketplaces.amazon.base import timestamp
from process_api.marketplaces.amazon.profile import AmazonProfile

FEED_TYPE = "JSON_LISTINGS_FEED"
FEED_CONTENT_TYPE = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Promotion:
    price: Decimal
    starts_at: datetime
    ends_at: datetime


@dataclass(frozen=True)
class ListingChange:
    """One SKU's change to send: its availability, or its price with optional promotions."""

    sku: str
    kind: str  # "availability" or "price"
    quantity: int | None = None
    currency: str | None = None
    our_price: Decimal | None = None
    promotions: tuple[Promotion, ...] = ()
    reference: str = ""
    """What to confirm once Amazon took it: a publication id, or the published quantity."""


def _number(value: Decimal) -> float | int:
    # JSON numbers for Amazon's schema; Decimal -> float only at this edge, exact for prices.
    return int(value) if value == value.to_integral_value() else float(value)


def patches(change: ListingChange, profile: AmazonProfile) -> list[dict[str, Any]]:
    """JSON Patch operations for one change."""
    if change.kind == "availability":
        return [
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": [
                    {
                        "fulfillment_channel_code": profile.fulfillment_channel_code,
                        "quantity": change.quantity,
                    }
                ],
            }
        ]
    value_key = "value_with_tax" if profile.price_includes_tax else "value_without_tax"
    offer: dict[str, Any] = {
        "marketplace_id": profile.marketplace_id,
        "currency": change.currency,
    }
    if change.our_price is not None:
        offer["our_price"] = [{"schedule": [{value_key: _number(change.our_price)}]}]
    if change.promotions:
        offer["discounted_price"] = [
            {
                "schedule": [
                    {
                        "start_at": timestamp(p.starts_at),
                        "end_at": timestamp(p.ends_at),
                        value_key: _number(p.price),
                    }
                    for p in change.promotions
                ]
            }
        ]
    return [{"op": "replace", "path": "/attributes/purchasable_offer", "value": [offer]}]


def patch_request(change: ListingChange, profile: AmazonProfile) -> dict[str, Any]:
    return {"productType": profile.product_type, "patches": patches(change, profile)}


def feed_document(changes: list[ListingChange], profile: AmazonProfile) -> dict[str, Any]:
    """A JSON_LISTINGS_FEED document; message ids are 1..n in the order of changes."""
    return {
        "header": {"sellerId": profile.seller_id, "version": "2.0"},
        "messages": [
            {
                "messageId": number,
                "sku": change.sku,
                "operationType": "PATCH",
                "productType": profile.product_type,
                "patches": patches(change, profile),
            }
            for number, change in enumerate(changes, start=1)
        ],
    }


def message_results(report: dict[str, Any]) -> dict[int, list[str]]:
    """From a processing report: messageId -> the ERROR issues Amazon found (empty: accepted).

    A message the report does not mention was processed without issues."""
    results: dict[int, list[str]] = {}
    for issue in report.get("issues") or []:
        number = issue.get("messageId")
        if not isinstance(number, int):
            continue
        errors = results.setdefault(number, [])
        if issue.get("severity") == "ERROR":
            errors.append(f"{issue.get('code')}: {issue.get('message')}")
    return results
