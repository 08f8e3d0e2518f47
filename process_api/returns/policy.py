"""The return policy of a channel: which return lines are authorized, and when each is refunded.

Pure functions of the order, what shipped, what was returned before and the channel's profile;
the service runs them inside the unit of work that records the return.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from contracts import Order
from contracts.channel import ChannelProfile, RefundTiming
from contracts.returns import RefusalCode, ReturnLine, ReturnRefusal


@dataclass(frozen=True)
class ShippedLine:
    """Units of an order line the warehouse shipped, and when the last of them left."""

    quantity: int
    last_shipped_at: datetime


@dataclass(frozen=True)
class ReturnPolicy:
    """What a channel's profile says about returns."""

    window: timedelta = timedelta(days=30)
    timing: RefundTiming = RefundTiming.AFTER_INSPECTION
    immediate_limit: Decimal | None = None

    @classmethod
    def of(cls, profile: ChannelProfile | None) -> ReturnPolicy:
        if profile is None:
            return cls()
        return cls(
            window=profile.return_window,
            timing=profile.refund_timing,
            immediate_limit=profile.immediate_refund_limit,
        )

    def timing_for(self, line_value: Decimal) -> RefundTiming:
        """When a line worth line_value (its returned units at the order's price) is refunded.

        after_inspection channels refund every line after inspection, whatever its value. On
        other channels a line below the immediate refund limit (when the profile sets one) is
        refunded at once; other lines on receipt where the channel refunds on receipt, and after
        inspection otherwise (an immediate channel without a limit refunds nothing blind).
        """
        if self.timing is RefundTiming.AFTER_INSPECTION:
            return RefundTiming.AFTER_INSPECTION
        if self.immediate_limit is not None and line_value < self.immediate_limit:
            return RefundTiming.IMMEDIATE
        if self.timing is RefundTiming.ON_RECEIPT:
            return RefundTiming.ON_RECEIPT
        return RefundTiming.AFTER_INSPECTION


def refusals(
    order: Order,
    lines: list[ReturnLine],
    *,
    shipped: dict[str, ShippedLine],
    returned: dict[str, int],
    policy: ReturnPolicy,
    now: datetime,
) -> list[ReturnRefusal]:
    """Every reason the return cannot be authorized (empty: authorized).

    A line must name a line of the order with its SKU, have shipped, be inside the return window
    counted from the line's last shipment, and ask for no more than shipped minus already
    returned (returns not refused count). Each line is checked against every rule.
    """
    order_lines = {line.line_id: line for line in order.lines}
    found: list[ReturnRefusal] = []

    def refuse(line_id: str, code: RefusalCode, detail: str) -> None:
        found.append(ReturnRefusal(line_id=line_id, code=code, detail=detail))

    for line in lines:
        ordered = order_lines.get(line.line_id)
        if ordered is None:
            refuse(
                line.line_id,
                RefusalCode.UNKNOWN_LINE,
                f"order {order.order_id} has no line {line.line_id!r}",
            )
            continue
        if ordered.sku != line.sku:
            refuse(
                line.line_id,
                RefusalCode.SKU_MISMATCH,
                f"line {line.line_id!r} of order {order.order_id} is {ordered.sku}, not {line.sku}",
            )
        sent = shipped.get(line.line_id)
        if sent is None or sent.quantity == 0:
            refuse(
                line.line_id,
                RefusalCode.NOT_SHIPPED,
                f"nothing of line {line.line_id!r} has shipped (order is {order.status.value})",
            )
            continue
        deadline = sent.last_shipped_at + policy.window
        if now > deadline:
            refuse(
                line.line_id,
                RefusalCode.OUTSIDE_RETURN_WINDOW,
                f"line {line.line_id!r} shipped {sent.last_shipped_at.isoformat()}; the "
                f"channel's return window of {_days(policy.window)} ended "
                f"{deadline.isoformat()}",
            )
        already = returned.get(line.line_id, 0)
        returnable = max(sent.quantity - already, 0)
        if line.quantity > returnable:
            refuse(
                line.line_id,
                RefusalCode.QUANTITY_EXCEEDS_RETURNABLE,
                f"line {line.line_id!r}: {line.quantity} units asked, {sent.quantity} shipped, "
                f"{already} already returned: at most {returnable} returnable",
            )
    return found


def _days(window: timedelta) -> str:
    if window % timedelta(days=1) == timedelta(0):
        days = window // timedelta(days=1)
        return f"{days} day" + ("" if days == 1 else "s")
    return str(window)
