"""Wire-format helpers shared by the partner API versions."""

from __future__ import annotations

from collections.abc import Sequence

from contracts import Money, minor_unit_exponent
from contracts.common import ensure_unique
from contracts.order import check_order_total


def check_minor_unit_precision(money: Money) -> None:
    """Partner prices are whole minor units (cents), so every version can show them exactly."""
    try:
        money.to_minor_units()
    except ValueError as exc:
        raise ValueError(
            f"{money.amount} {money.currency} has more than "
            f"{minor_unit_exponent(money.currency)} decimal places"
        ) from exc


def check_order_lines(lines: Sequence[tuple[str, Money, int]], currency: str) -> None:
    """Line ids unique, every price in the order's currency, a total that is a valid amount:
    (line_id, unit price, quantity) per line."""
    ensure_unique((line_id for line_id, _, _ in lines), "line_id")
    check_order_total((price.amount, quantity) for _, price, quantity in lines)
    foreign = [line_id for line_id, price, _ in lines if price.currency != currency]
    if foreign:
        raise ValueError(
            f"all unit prices must be in the order currency {currency}; "
            f"lines in another currency: {', '.join(foreign)}"
        )
