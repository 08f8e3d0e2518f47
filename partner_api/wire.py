"""Wire-format helpers shared by the partner API versions."""

from __future__ import annotations

from collections.abc import Sequence

from contracts import Money, minor_unit_exponent
from contracts.common import ensure_unique


def check_minor_unit_precision(money: Money) -> None:
    """Partner prices are whole minor units (cents), so every version can show them exactly."""
    try:
        money.to_minor_units()
    except ValueError as exc:
        raise ValueError(
            f"{money.amount} {money.currency} has more than "
            f"{minor_unit_exponent(money.currency)} decimal places"
        ) from exc


def check_order_lines(lines: Sequence[tuple[str, str]], currency: str) -> None:
    """Line ids unique and every price in the order's currency: (line_id, price currency) pairs."""
    ensure_unique((line_id for line_id, _ in lines), "line_id")
    foreign = [line_id for line_id, line_currency in lines if line_currency != currency]
    if foreign:
        raise ValueError(
            f"all unit prices must be in the order currency {currency}; "
            f"lines in another currency: {', '.join(foreign)}"
        )
