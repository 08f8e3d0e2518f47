"""Partner API v2 shapes: money in integer minor units, quantities per line status."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
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
    Package,
    Shipment,
    minor_unit_exponent,
)
from contracts.channel import RefundTiming
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
from contracts.price import ChannelPrice
from contracts.refund import RefundKind, RefundState
from contracts.returns import InspectionGrade, Return, ReturnRefusal, ReturnStatus
from partner_api.wire import check_order_lines


class MinorMoney(ContractModel):
    """An amount in the currency's minor unit (cents for EUR, yen for JPY)."""

    amount_minor: int = Field(
        ge=-(10**12), le=10**12, description="Amount in minor units, e.g. 1290 for 12.90 EUR."
    )
    currency: CurrencyCode

    @classmethod
    def of(cls, money: Money) -> MinorMoney:
        return cls(amount_minor=money.to_minor_units(), currency=money.currency)

    def to_money(self) -> Money:
        return Money.from_minor_units(self.amount_minor, self.currency)


class V2OrderLineIn(ContractModel):
    line_id: LineId
    sku: Sku
    quantity: Quantity
    unit_price: MinorMoney


class V2OrderIn(ContractModel):
    """An order a marketplace submits; its channel is the one of the calling client."""

    channel_order_id: Identifier = Field(description="The order's id in the marketplace.")
    currency: CurrencyCode
    customer: Customer | None = None
    shipping_address: Address | None = None
    lines: list[V2OrderLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)
    placed_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _lines_are_consistent(self) -> Self:
        check_order_lines(
            [(x.line_id, x.unit_price.to_money(), x.quantity) for x in self.lines],
            self.currency,
        )
        return self


class LineStatus(StrEnum):
    """Where a line stands, as marketplaces with line-level statuses expect."""

    CREATED = "created"
    ACKNOWLEDGED = "acknowledged"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    SHIPPED = "shipped"


class LineQuantities(ContractModel):
    """How many units of the line are in each status."""

    created: int = Field(ge=0)
    acknowledged: int = Field(ge=0)
    rejected: int = Field(ge=0)
    cancelled: int = Field(ge=0)
    shipped: int = Field(ge=0)


class V2OrderLine(ContractModel):
    line_id: LineId
    sku: Sku
    ordered_quantity: Quantity
    unit_price: MinorMoney
    status: LineStatus
    quantities: LineQuantities


class V2Order(ContractModel):
    """An order as v2 shows it to its channel."""

    order_id: Identifier
    channel_order_id: Identifier
    status: OrderStatus
    currency: CurrencyCode
    lines: list[V2OrderLine]
    total: MinorMoney
    created_at: UtcDateTime
    updated_at: UtcDateTime
    rejections: list[LineRejection] = Field(default_factory=list)


_LINE_STATUS = {
    OrderStatus.RECEIVED: LineStatus.CREATED,
    OrderStatus.RESERVED: LineStatus.CREATED,
    OrderStatus.ON_HOLD: LineStatus.CREATED,
    OrderStatus.VALIDATED: LineStatus.ACKNOWLEDGED,
    OrderStatus.ACCEPTED: LineStatus.ACKNOWLEDGED,
    OrderStatus.RELEASED: LineStatus.ACKNOWLEDGED,
    OrderStatus.PARTIALLY_SHIPPED: LineStatus.ACKNOWLEDGED,
    OrderStatus.SHIPPED: LineStatus.SHIPPED,
    OrderStatus.INVOICED: LineStatus.SHIPPED,
    OrderStatus.SETTLED: LineStatus.SHIPPED,
    OrderStatus.REJECTED: LineStatus.REJECTED,
    OrderStatus.CANCELLED: LineStatus.CANCELLED,
}


def _line(line: OrderLine, status: LineStatus, shipped: int) -> V2OrderLine:
    """A line of an order in this status with shipped units confirmed by the warehouse: those
    count as shipped, the rest keep the order's line status."""
    counts = dict.fromkeys(LineStatus, 0)
    shipped = min(shipped, line.quantity)
    if status in (LineStatus.ACKNOWLEDGED, LineStatus.SHIPPED):
        counts[LineStatus.SHIPPED] = shipped
        left = line.quantity - shipped
        status = LineStatus.SHIPPED if left == 0 else LineStatus.ACKNOWLEDGED
        counts[LineStatus.ACKNOWLEDGED] += left
    else:
        counts[status] = line.quantity
    return V2OrderLine(
        line_id=line.line_id,
        sku=line.sku,
        ordered_quantity=line.quantity,
        unit_price=MinorMoney.of(line.unit_price),
        status=status,
        quantities=LineQuantities(**{s.value: n for s, n in counts.items()}),
    )


class V2Orders:
    """v2 <-> canonical orders."""

    request_model = V2OrderIn
    response_model = V2Order

    def to_submission(self, body: V2OrderIn, *, channel: str) -> OrderSubmission:
        return OrderSubmission(
            channel=channel,
            channel_order_id=body.channel_order_id,
            currency=body.currency,
            customer=body.customer,
            shipping_address=body.shipping_address,
            lines=[
                OrderLine(
                    line_id=line.line_id,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price.to_money(),
                )
                for line in body.lines
            ],
            placed_at=body.placed_at,
        )

    def from_order(self, order: Order) -> V2Order:
        status = _LINE_STATUS[order.status]
        return V2Order(
            order_id=order.order_id,
            channel_order_id=order.channel_order_id,
            status=order.status,
            currency=order.currency,
            lines=[
                _line(line, status, order.shipped_quantities.get(line.line_id, 0))
                for line in order.lines
            ],
            total=MinorMoney.of(order.total),
            created_at=order.created_at,
            updated_at=order.updated_at,
            rejections=order.rejections,
        )


class V2Availability(ContractModel):
    """What the calling channel may sell of one SKU now, and what was last sent to it."""

    sku: Sku
    available_quantity: int = Field(
        ge=0,
        description=(
            "Units the channel may sell now: on-hand minus reservations, safety stock and the "
            "channel's buffer, then its availability policy. 0 for an unknown SKU."
        ),
    )
    as_of: UtcDateTime = Field(description="When available_quantity was computed (UTC).")
    published_quantity: int | None = Field(
        ge=0,
        description=(
            "The last value the gateway published to the channel for this SKU; null if none was."
        ),
    )
    published_at: UtcDateTime | None = Field(
        description="When published_quantity was published (UTC); null if it never was."
    )


class V2AvailabilityList(ContractModel):
    """One entry per SKU asked for, in the order asked."""

    items: list[V2Availability]


class V2Inventory:
    """canonical availability -> v2."""

    response_model = V2AvailabilityList

    def from_availability(self, entries: Sequence[ChannelAvailability]) -> V2AvailabilityList:
        return V2AvailabilityList(
            items=[
                V2Availability(
                    sku=entry.sku,
                    available_quantity=entry.available,
                    as_of=entry.as_of,
                    published_quantity=entry.published_quantity,
                    published_at=entry.published_at,
                )
                for entry in entries
            ]
        )


class V2ShippedLine(ContractModel):
    """Units of one order line shipped."""

    line_id: LineId = Field(description="The order line, as submitted.")
    sku: Sku
    shipped_quantity: int = Field(gt=0)


class V2Package(ContractModel):
    """One parcel handed to a carrier."""

    package_reference: str = Field(description="The warehouse's reference of the parcel.")
    carrier: str = Field(description="Carrier code as the warehouse reported it, e.g. dhl.")
    tracking_number: str = Field(
        description="The carrier's tracking number, unchanged (no spaces added or removed)."
    )
    lines: list[V2ShippedLine] = Field(description="Units of each order line in the parcel.")


class V2Shipment(ContractModel):
    """A shipment of (part of) the order from one warehouse, with its parcels."""

    shipment_id: Identifier | None
    order_id: Identifier
    channel_order_id: Identifier = Field(description="The order's id in the marketplace.")
    warehouse: str = Field(description="The warehouse it was shipped from.")
    shipped_at: UtcDateTime = Field(description="When the goods left the warehouse (UTC).")
    lines: list[V2ShippedLine] = Field(
        description="Units of each order line in the shipment: the sum over its packages."
    )
    packages: list[V2Package]


class V2ShipmentList(ContractModel):
    """The order's shipments the warehouse has confirmed, oldest first; empty while nothing has
    shipped."""

    items: list[V2Shipment]


def _lines(packages: Sequence[Package]) -> list[V2ShippedLine]:
    """Units per order line over the packages, lines in the order first shipped."""
    totals: dict[str, tuple[str, int]] = {}
    for package in packages:
        for item in package.lines:
            sku, units = totals.get(item.line_id, (item.sku, 0))
            totals[item.line_id] = (sku, units + item.quantity)
    return [
        V2ShippedLine(line_id=line_id, sku=sku, shipped_quantity=units)
        for line_id, (sku, units) in totals.items()
    ]


class V2Shipments:
    """canonical shipments -> v2: shipments with their packages."""

    response_model = V2ShipmentList

    def from_shipments(self, order: Order, shipments: Sequence[Shipment]) -> V2ShipmentList:
        return V2ShipmentList(
            items=[
                V2Shipment(
                    shipment_id=shipment.shipment_id,
                    order_id=order.order_id,
                    channel_order_id=order.channel_order_id,
                    warehouse=shipment.warehouse,
                    shipped_at=shipment.shipped_at,
                    lines=_lines(shipment.packages),
                    packages=[
                        V2Package(
                            package_reference=package.package_reference,
                            carrier=package.carrier,
                            tracking_number=package.tracking_number,
                            lines=_lines([package]),
                        )
                        for package in shipment.packages
                    ],
                )
                for shipment in shipments
            ]
        )


class V2Promotion(ContractModel):
    """A promotional price for [starts_at, ends_at): from starts_at, until before ends_at."""

    promotion_id: Identifier
    price: MinorMoney
    starts_at: UtcDateTime = Field(description="First instant it applies (inclusive, UTC).")
    ends_at: UtcDateTime = Field(description="First instant it no longer applies (exclusive).")


class V2Price(ContractModel):
    """The calling channel's price of one SKU at the instant asked, in minor units."""

    sku: Sku
    at: UtcDateTime = Field(description="The instant the price is for (UTC).")
    price: MinorMoney | None = Field(
        description=(
            "Unit price at `at`: the promotion's inside its window, else the base price; null "
            "when the channel has no published price for the SKU."
        )
    )
    base_price: MinorMoney | None = Field(description="The regular price; null like price.")
    promotion: V2Promotion | None = Field(
        description="The promotion that sets the price at `at`; null outside every window."
    )
    price_book_version: int | None = Field(
        ge=1, description="The version of the channel's price book the price comes from."
    )


class V2PriceList(ContractModel):
    """One entry per SKU asked for, in the order asked."""

    items: list[V2Price]


def _minor_or_none(money: Money | None) -> MinorMoney | None:
    return None if money is None else MinorMoney.of(money)


class V2Prices:
    """canonical channel prices -> v2: money in minor units."""

    response_model = V2PriceList

    def from_prices(self, prices: Sequence[ChannelPrice]) -> V2PriceList:
        return V2PriceList(
            items=[
                V2Price(
                    sku=p.sku,
                    at=p.at,
                    price=_minor_or_none(p.price),
                    base_price=_minor_or_none(p.base_price),
                    promotion=None
                    if p.promotion is None
                    else V2Promotion(
                        promotion_id=p.promotion.promotion_id,
                        price=MinorMoney.of(p.promotion.price),
                        starts_at=p.promotion.starts_at,
                        ends_at=p.promotion.ends_at,
                    ),
                    price_book_version=p.version,
                )
                for p in prices
            ]
        )


def _minor(money: Money) -> MinorMoney:
    """Money in minor units, rounded half to even where it is finer (a refund shared out)."""
    exponent = minor_unit_exponent(money.currency)
    units = money.amount.scaleb(exponent).to_integral_value(rounding=ROUND_HALF_EVEN)
    return MinorMoney(amount_minor=int(units), currency=money.currency)


class V2ReturnLineIn(ContractModel):
    """Units of one order line the customer sends back."""

    line_id: LineId = Field(description="The order line, as submitted.")
    sku: Sku
    quantity: Quantity = Field(description="Units announced for return.")
    reason: str = Field(min_length=1, max_length=500, description="The customer's reason.")


class V2ReturnIn(ContractModel):
    """A return the channel asks for, of one of its orders."""

    order_id: Identifier = Field(description="The gateway's order id.")
    channel_return_id: Identifier = Field(description="The return's id in the marketplace.")
    lines: list[V2ReturnLineIn] = Field(min_length=1, max_length=MAX_ORDER_LINES)

    @model_validator(mode="after")
    def _unique_lines(self) -> Self:
        ensure_unique((line.line_id for line in self.lines), "line_id")
        return self


class ReturnLineQuantities(ContractModel):
    """Where the units of a return line stand."""

    requested: int = Field(ge=0, description="Units announced for return.")
    received: int = Field(ge=0, description="Units the warehouse received.")
    resellable: int = Field(ge=0, description="Received units inspected as resellable.")
    damaged: int = Field(ge=0, description="Received units inspected as damaged.")
    missing: int = Field(ge=0, description="Units that never arrived or came as an empty box.")
    refunded: int = Field(ge=0, description="Units our refunds credited (the channel's aside).")


class V2ReturnLine(ContractModel):
    line_id: LineId
    sku: Sku
    reason: str
    unit_price: MinorMoney | None = Field(description="The order line's unit price.")
    refund_timing: RefundTiming | None = Field(
        description="When the line is refunded under the channel's policy; null when refused."
    )
    quantities: ReturnLineQuantities


class V2RefundLine(ContractModel):
    line_id: LineId
    quantity: int = Field(ge=0)
    amount: MinorMoney


class V2Refund(ContractModel):
    """A refund of the return: ours (pay it to the customer once posted) or the channel's own."""

    refund_id: Identifier
    kind: RefundKind
    state: RefundState
    amount: MinorMoney
    lines: list[V2RefundLine]
    issued_at: UtcDateTime | None = Field(description="When the ERP credited it; null until then.")


class V2ChannelRefund(ContractModel):
    channel_refund_id: Identifier
    amount: MinorMoney
    refunded_at: UtcDateTime


class V2Return(ContractModel):
    """A return as v2 shows it to its channel."""

    return_id: Identifier
    order_id: Identifier
    channel_return_id: Identifier | None
    status: ReturnStatus
    currency: CurrencyCode
    lines: list[V2ReturnLine]
    value: MinorMoney = Field(description="Announced units at the order's prices.")
    refunded: MinorMoney = Field(description="What our posted refunds credited so far.")
    refusals: list[ReturnRefusal] = Field(default_factory=list)
    refunds: list[V2Refund] = Field(default_factory=list)
    channel_refund: V2ChannelRefund | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class V2Returns:
    """v2 <-> canonical returns: money in minor units, quantities per line."""

    request_model = V2ReturnIn
    response_model = V2Return

    def from_return(self, ret: Return) -> V2Return:
        received = {r.line_id: r.quantity_received for r in ret.receipts}
        ours = [r for r in ret.refunds if r.kind is not RefundKind.CHANNEL]
        posted = [r for r in ours if r.state is RefundState.POSTED]

        def graded(line_id: str, grade: InspectionGrade) -> int:
            return sum(
                i.quantity for i in ret.inspections if i.line_id == line_id and i.grade is grade
            )

        def refunded(line_id: str) -> int:
            return sum(item.quantity for r in ours for item in r.lines if item.line_id == line_id)

        lines = []
        for line in ret.lines:
            got = received.get(line.line_id, 0)
            lines.append(
                V2ReturnLine(
                    line_id=line.line_id,
                    sku=line.sku,
                    reason=line.reason,
                    unit_price=None if line.unit_price is None else _minor(line.unit_price),
                    refund_timing=line.refund_timing,
                    quantities=ReturnLineQuantities(
                        requested=line.quantity,
                        received=got,
                        resellable=graded(line.line_id, InspectionGrade.RESELLABLE),
                        damaged=graded(line.line_id, InspectionGrade.DAMAGED),
                        missing=(line.quantity - got if line.line_id in received else 0)
                        + graded(line.line_id, InspectionGrade.MISSING),
                        refunded=refunded(line.line_id),
                    ),
                )
            )
        total = sum((r.amount.amount for r in posted), Decimal(0))
        return V2Return(
            return_id=ret.return_id,
            order_id=ret.order_id,
            channel_return_id=ret.channel_return_id,
            status=ret.status,
            currency=ret.currency,
            lines=lines,
            value=_minor(ret.value),
            refunded=_minor(Money(amount=total, currency=ret.currency)),
            refusals=ret.refusals,
            refunds=[
                V2Refund(
                    refund_id=r.refund_id,
                    kind=r.kind,
                    state=r.state,
                    amount=_minor(r.amount),
                    lines=[
                        V2RefundLine(
                            line_id=item.line_id, quantity=item.quantity, amount=_minor(item.amount)
                        )
                        for item in r.lines
                    ],
                    issued_at=r.issued_at,
                )
                for r in ret.refunds
            ],
            channel_refund=None
            if ret.channel_refund is None
            else V2ChannelRefund(
                channel_refund_id=ret.channel_refund.channel_refund_id,
                amount=_minor(ret.channel_refund.amount),
                refunded_at=ret.channel_refund.refunded_at,
            ),
            created_at=ret.created_at,
            updated_at=ret.updated_at,
        )
