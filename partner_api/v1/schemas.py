"""Partner API v1 shapes: amounts as decimal strings with their currency."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

from pydantic import Field, model_validator

from contracts import (
    Address,
    ChannelAvailability,
    Customer,
    LineRejection,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    OrderSubmission,
    Shipment,
    ShipmentLine,
)
from contracts.common import (
    ContractModel,
    CurrencyCode,
    Identifier,
    LineId,
    Quantity,
    Sku,
    UtcDateTime,
    ensure_unique,
)
from contracts.order import MAX_ORDER_LINES
from contracts.price import ChannelPrice, Promotion
from contracts.refund import RefundKind, RefundState
from contracts.returns import ChannelRefund, Return, ReturnRefusal, ReturnStatus
from partner_api.wire import check_minor_unit_precision, check_order_lines


class V1OrderLineIn(OrderLine):
    """An ordered line; unit_price is {amount: "12.90", currency: "EUR"}."""

    @model_validator(mode="after")
    def _whole_minor_units(self) -> Self:
        check_minor_unit_precision(self.unit_price)
        return self


class V1OrderIn(ContractModel):
    """An order a marketplace submits; its channel is the one of the calling client."""

    channel_order_id: Identifier = Field(description="The order's id in the marketplace.")
    currency: CurrencyCode
    customer: Customer | None = None
    shipping_address: Address | None = None
    lines: list[V1OrderLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    placed_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _lines_are_consistent(self) -> Self:
        check_order_lines(
            [(x.line_id, x.unit_price, x.quantity) for x in self.lines], self.currency
        )
        return self


class V1Order(ContractModel):
    """An order as v1 shows it to its channel."""

    order_id: Identifier
    channel_order_id: Identifier
    status: OrderStatus
    currency: CurrencyCode
    lines: list[OrderLine]
    total: Money
    created_at: UtcDateTime
    updated_at: UtcDateTime
    rejections: list[LineRejection] = Field(default_factory=list)


class V1Orders:
    """v1 <-> canonical orders."""

    request_model = V1OrderIn
    response_model = V1Order

    def to_submission(self, body: V1OrderIn, *, channel: str) -> OrderSubmission:
        return OrderSubmission(
            channel=channel,
            channel_order_id=body.channel_order_id,
            currency=body.currency,
            customer=body.customer,
            shipping_address=body.shipping_address,
            lines=[OrderLine.model_validate(line.model_dump()) for line in body.lines],
            placed_at=body.placed_at,
        )

    def from_order(self, order: Order) -> V1Order:
        return V1Order(
            order_id=order.order_id,
            channel_order_id=order.channel_order_id,
            status=order.status,
            currency=order.currency,
            lines=order.lines,
            total=order.total,
            created_at=order.created_at,
            updated_at=order.updated_at,
            rejections=order.rejections,
        )


class V1Availability(ContractModel):
    """What the calling channel may sell of one SKU now."""

    sku: Sku
    quantity: int = Field(ge=0, description="Units the channel may sell (0 for an unknown SKU).")
    as_of: UtcDateTime = Field(description="When the quantity was computed (UTC).")


class V1AvailabilityList(ContractModel):
    """One entry per SKU asked for, in the order asked."""

    items: list[V1Availability]


class V1Inventory:
    """canonical availability -> v1."""

    response_model = V1AvailabilityList

    def from_availability(self, entries: Sequence[ChannelAvailability]) -> V1AvailabilityList:
        return V1AvailabilityList(
            items=[
                V1Availability(sku=entry.sku, quantity=entry.available, as_of=entry.as_of)
                for entry in entries
            ]
        )


class V1Package(ContractModel):
    """One parcel of the order handed to a carrier, with its tracking and contents."""

    order_id: Identifier
    shipment_id: Identifier | None = Field(
        description="The shipment the parcel left the warehouse with."
    )
    package_reference: str = Field(description="The warehouse's reference of the parcel.")
    carrier: str = Field(description="Carrier code as the warehouse reported it, e.g. dhl.")
    tracking_number: str = Field(description="The carrier's tracking number.")
    warehouse: str = Field(description="The warehouse it was shipped from.")
    shipped_at: UtcDateTime = Field(description="When the shipment left the warehouse (UTC).")
    lines: list[ShipmentLine] = Field(description="Units of each order line in the parcel.")


class V1PackageList(ContractModel):
    """Every parcel of the order the warehouse has confirmed, oldest shipment first; empty
    while nothing has shipped."""

    items: list[V1Package]


class V1Shipments:
    """canonical shipments -> v1: one flat list of packages."""

    response_model = V1PackageList

    def from_shipments(self, order: Order, shipments: Sequence[Shipment]) -> V1PackageList:
        return V1PackageList(
            items=[
                V1Package(
                    order_id=order.order_id,
                    shipment_id=shipment.shipment_id,
                    package_reference=package.package_reference,
                    carrier=package.carrier,
                    tracking_number=package.tracking_number,
                    warehouse=shipment.warehouse,
                    shipped_at=shipment.shipped_at,
                    lines=package.lines,
                )
                for shipment in shipments
                for package in shipment.packages
            ]
        )


class V1Price(ContractModel):
    """The calling channel's price of one SKU at the instant asked."""

    sku: Sku
    at: UtcDateTime = Field(description="The instant the price is for (UTC).")
    price: Money | None = Field(
        description=(
            "Unit price at `at`: the promotion's inside its window, else the base price; null "
            "when the channel has no published price for the SKU."
        )
    )
    base_price: Money | None = Field(description="The regular price; null like price.")
    promotion: Promotion | None = Field(
        description="The promotion that sets the price at `at`; null outside every window."
    )


class V1PriceList(ContractModel):
    """One entry per SKU asked for, in the order asked."""

    items: list[V1Price]


class V1Prices:
    """canonical channel prices -> v1."""

    response_model = V1PriceList

    def from_prices(self, prices: Sequence[ChannelPrice]) -> V1PriceList:
        return V1PriceList(
            items=[
                V1Price(
                    sku=p.sku,
                    at=p.at,
                    price=p.price,
                    base_price=p.base_price,
                    promotion=p.promotion,
                )
                for p in prices
            ]
        )


class V1ReturnLineIn(ContractModel):
    """Units of one order line the customer sends back."""

    line_id: LineId = Field(description="The order line, as submitted.")
    sku: Sku
    quantity: Quantity = Field(description="Units announced for return.")
    reason: str = Field(min_length=1, max_length=500, description="The customer's reason.")


class V1ReturnIn(ContractModel):
    """A return the channel asks for, of one of its orders."""

    order_id: Identifier = Field(description="The gateway's order id.")
    channel_return_id: Identifier = Field(description="The return's id in the marketplace.")
    lines: list[V1ReturnLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class V1Refund(ContractModel):
    """A refund of the return: ours (pay it to the customer once posted) or the channel's own."""

    refund_id: Identifier
    kind: RefundKind
    state: RefundState
    amount: Money
    issued_at: UtcDateTime | None = Field(description="When the ERP credited it; null until then.")


class V1Return(ContractModel):
    """A return as v1 shows it to its channel."""

    return_id: Identifier
    order_id: Identifier
    channel_return_id: Identifier | None
    status: ReturnStatus
    currency: CurrencyCode
    lines: list[V1ReturnLineIn]
    refusals: list[ReturnRefusal] = Field(default_factory=list)
    refunds: list[V1Refund] = Field(default_factory=list)
    channel_refund: ChannelRefund | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class V1Returns:
    """v1 <-> canonical returns."""

    request_model = V1ReturnIn
    response_model = V1Return

    def from_return(self, ret: Return) -> V1Return:
        return V1Return(
            return_id=ret.return_id,
            order_id=ret.order_id,
            channel_return_id=ret.channel_return_id,
            status=ret.status,
            currency=ret.currency,
            lines=[
                V1ReturnLineIn(
                    line_id=line.line_id, sku=line.sku, quantity=line.quantity, reason=line.reason
                )
                for line in ret.lines
            ],
            refusals=ret.refusals,
            refunds=[
                V1Refund(
                    refund_id=refund.refund_id,
                    kind=refund.kind,
                    state=refund.state,
                    amount=refund.amount,
                    issued_at=refund.issued_at,
                )
                for refund in ret.refunds
            ],
            channel_refund=ret.channel_refund,
            created_at=ret.created_at,
            updated_at=ret.updated_at,
        )
