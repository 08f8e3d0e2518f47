"""How the gateway's documents are written into Tryton's records, and read back.

Everything the adapters need to find again is kept in Tryton itself (no state in the gateway):

- sales order reference -> ``sale.sale.reference``; channel -> ``sale.sale.description``;
  order line id -> ``sale.line.note`` (``gateway-line:<line_id>``)
- invoice / credit note reference -> ``account.invoice.reference``; invoice lines point at their
  ``sale.line`` (origin), credit note lines at the credited ``account.invoice.line``
- package reference -> ``stock.shipment.out.reference`` of the shipment that shipped it (one
  customer shipment per package), carrier -> ``shipping_description``, tracking number ->
  ``shipping_reference`` (also on its ``stock.package``)
- package corrections -> a customer return shipment (``stock.shipment.out.return``) with the
  package reference whose moves point (origin) at the shipped moves they correct
- stock adjustments -> a ``stock.shipment.internal`` with the adjustment reference, plus an
  ``ir.note`` holding what the gateway asked; returns -> ``stock.shipment.out.return`` with the
  RMA reference, receipt and inspection lines in ``ir.note`` records on it
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal
from typing import Any

from contracts.erp import SalesOrderState

LINE_NOTE_PREFIX = "gateway-line:"
NOTE_MARK = "gateway"

# Tryton sale states -> the port's sales order states.
SALE_STATES: dict[str, SalesOrderState] = {
    "draft": SalesOrderState.QUOTATION,
    "quotation": SalesOrderState.QUOTATION,
    "confirmed": SalesOrderState.CONFIRMED,
    "processing": SalesOrderState.CONFIRMED,
    "done": SalesOrderState.CONFIRMED,
    "cancelled": SalesOrderState.CANCELLED,
}
CONFIRMED_SALE_STATES = frozenset({"confirmed", "processing", "done"})
OPEN_SHIPMENT_STATES = frozenset({"draft", "waiting", "assigned", "picked", "packed"})


def line_note(line_id: str) -> str:
    return f"{LINE_NOTE_PREFIX}{line_id}"


def line_id_of(sale_line: dict[str, Any]) -> str:
    """The gateway's line id of a sale line (its sequence or id when Tryton made the line)."""
    note = sale_line.get("note") or ""
    for text in note.splitlines():
        if text.startswith(LINE_NOTE_PREFIX):
            return text.removeprefix(LINE_NOTE_PREFIX)
    return str(sale_line.get("sequence") or sale_line["id"])


def origin_id(origin: Any, model: str) -> int | None:
    """The id of a reference field value such as ``"sale.line,12"`` when it names ``model``."""
    if not isinstance(origin, str):
        return None
    name, _, identifier = origin.partition(",")
    if name != model or not identifier.lstrip("-").isdigit():
        return None
    value = int(identifier)
    return value if value > 0 else None


def quantity(value: Any) -> int:
    """Tryton's float quantities as the whole units of the contracts."""
    return round(float(value or 0))


def note_message(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({NOTE_MARK: kind, **data}, sort_keys=True, default=str)


def parse_note(message: str | None, kind: str) -> dict[str, Any] | None:
    try:
        data = json.loads(message or "")
    except ValueError:
        return None
    if isinstance(data, dict) and data.get(NOTE_MARK) == kind:
        return data
    return None


def split_amount(units: int, amount: Decimal, places: int = 4) -> list[tuple[int, Decimal]]:
    """Lines (quantity, unit price) that credit exactly ``amount`` for ``units`` units.

    One line when the unit price is exact at Tryton's price precision, else the units at the
    rounded-down unit price and one unit carrying the remainder.
    """
    step = Decimal(1).scaleb(-places)
    unit = (amount / units).quantize(step, rounding=ROUND_DOWN)
    if unit * units == amount:
        return [(units, unit)]
    if units == 1:
        return [(1, amount)]
    return [(units - 1, unit), (1, amount - unit * (units - 1))]
