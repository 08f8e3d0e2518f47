"""Helpers of the returns tests: shipped and invoiced orders, return payloads, channel profiles
with each refund timing, an ERP that can lose a credit note's answer, and reads of what the
gateway and the embedded ERP/WMS recorded."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import func, select

from contracts.channel import ChannelProfile, RefundTiming
from contracts.erp import CreditNoteRequest
from contracts.refund import CreditNote
from gateway import Gateway
from gateway_infra.scheduler import FAILED
from gateway_infra.tables import timers
from system_api.erp.port import ErpPort
from system_api.tables import erp_credit_notes, wms_ledger, wms_stock
from system_api.wms.embedded import LedgerBucket
from tests.factories import line
from tests.process.fulfilment.support import (
    WAREHOUSE,
    FlakyErp,
    Outage,
    events_of,
    package,
    released_order,
)

RED = "MUG-RED-350"  # 12.90 EUR
BLUE = "MUG-BLUE-350"  # 9.50 EUR


def red(quantity: int, line_id: str = "1") -> dict[str, Any]:
    """An order line of red mugs at 12.90 EUR."""
    return line(line_id, RED, quantity=quantity, price="12.90")


def blue(quantity: int, line_id: str = "2") -> dict[str, Any]:
    """An order line of blue mugs at 9.50 EUR."""
    return line(line_id, BLUE, quantity=quantity, price="9.50")


OUTLET = ChannelProfile(
    channel="outlet",
    name="Outlet marketplace (refunds low-value lines at once)",
    currency="EUR",
    return_window=timedelta(days=14),
    refund_timing=RefundTiming.IMMEDIATE,
    immediate_refund_limit=Decimal("10.00"),
)
"""Lines worth less than 10 EUR are refunded when the return is authorized."""
ONRECEIPT = ChannelProfile(
    channel="quickrefund",
    name="Marketplace refunding on receipt",
    currency="EUR",
    refund_timing=RefundTiming.ON_RECEIPT,
)
FORCING = ChannelProfile(
    channel="amazonish",
    name="Marketplace refunding at the first carrier scan",
    currency="EUR",
    refund_timing=RefundTiming.AFTER_INSPECTION,
)


async def shipped_order(
    gateway: Gateway,
    client: httpx.AsyncClient,
    channel_order_id: str,
    *lines: dict[str, Any],
    channel: str = "webshop",
    shipped_at: datetime | None = None,
    only: tuple[str, ...] | None = None,
) -> str:
    """An order released, shipped in one package (every unit, or of the lines named in only)
    and invoiced."""
    order_id = await released_order(client, channel_order_id, *lines, channel=channel)
    items = [
        (line["line_id"], line["sku"], line["quantity"])
        for line in lines
        if only is None or line["line_id"] in only
    ]
    when = shipped_at or gateway.clock.now()
    shipped = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json={
            "order_id": order_id,
            "warehouse": WAREHOUSE,
            "packages": [package(f"PKG-{channel_order_id}", *items)],
            "shipped_at": when.isoformat(),
        },
    )
    assert shipped.status_code == 201, shipped.text
    invoiced = await client.post(f"/process/v1/orders/{order_id}/invoice")
    assert invoiced.status_code == 200, invoiced.text
    return order_id


def return_payload(
    order_id: str,
    channel_return_id: str,
    *lines: tuple[str, str, int],
    channel: str = "webshop",
) -> dict[str, Any]:
    return {
        "channel": channel,
        "order_id": order_id,
        "channel_return_id": channel_return_id,
        "lines": [
            {"line_id": line_id, "sku": sku, "quantity": quantity, "reason": "does not fit"}
            for line_id, sku, quantity in lines
        ],
    }


async def create_return(
    client: httpx.AsyncClient,
    order_id: str,
    channel_return_id: str,
    *lines: tuple[str, str, int],
    channel: str = "webshop",
) -> dict[str, Any]:
    response = await client.post(
        "/process/v1/returns",
        json=return_payload(order_id, channel_return_id, *lines, channel=channel),
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def receipt(*lines: tuple[str, int]) -> dict[str, Any]:
    return {"lines": [{"line_id": line_id, "quantity_received": q} for line_id, q in lines]}


def inspection(*results: tuple[str, str, str, int]) -> dict[str, Any]:
    return {
        "lines": [
            {"line_id": line_id, "grade": grade, "disposition": disposition, "quantity": q}
            for line_id, grade, disposition, q in results
        ]
    }


def statuses(ret: dict[str, Any]) -> list[str]:
    return [step["to_status"] for step in ret["history"]]


def refunds_by_kind(ret: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {refund["kind"]: refund for refund in ret["refunds"]}


async def erp_credit_notes_of(gateway: Gateway, return_id: str) -> list[tuple[str, Decimal]]:
    """(reference, total) of every credit note the embedded ERP posted for a return."""
    rows = await gateway.store.read(
        lambda conn: conn.execute(
            select(erp_credit_notes.c.reference, erp_credit_notes.c.total)
            .where(erp_credit_notes.c.reference.startswith(f"{return_id}-", autoescape=True))
            .order_by(erp_credit_notes.c.id)
        ).all()
    )
    return [(str(reference), Decimal(total)) for reference, total in rows]


async def credit_note_count(gateway: Gateway) -> int:
    count = await gateway.store.read(
        lambda conn: conn.execute(select(func.count()).select_from(erp_credit_notes)).scalar_one()
    )
    return int(count)


async def wms_on_hand(gateway: Gateway, sku: str) -> tuple[int, int]:
    """(sellable on-hand, quarantined) of a SKU in the warehouse."""
    row = await gateway.store.read(
        lambda conn: conn.execute(
            select(wms_stock.c.on_hand, wms_stock.c.quarantined).where(
                wms_stock.c.sku == sku, wms_stock.c.warehouse == WAREHOUSE
            )
        ).one()
    )
    return int(row.on_hand), int(row.quarantined)


async def ledger_reasons(gateway: Gateway, reference: str) -> list[tuple[str, str, int]]:
    """(bucket, reason, delta) of the WMS ledger entries under a reference."""
    rows = await gateway.store.read(
        lambda conn: conn.execute(
            select(wms_ledger.c.bucket, wms_ledger.c.reason, wms_ledger.c.delta)
            .where(wms_ledger.c.reference == reference)
            .order_by(wms_ledger.c.id)
        ).all()
    )
    return [(str(b), str(r), int(d)) for b, r, d in rows]


async def failed_timers(gateway: Gateway) -> int:
    count = await gateway.store.read(
        lambda conn: conn.execute(
            select(func.count()).select_from(timers).where(timers.c.state == FAILED)
        ).scalar_one()
    )
    return int(count)


class LosingErp(FlakyErp):
    """An ERP that also loses the answer to a credit note once, when asked to."""

    def __init__(self, inner: ErpPort, outage: Outage) -> None:
        super().__init__(inner, outage)
        self.credit_note_calls = 0

    async def post_credit_note(self, request: CreditNoteRequest) -> CreditNote:
        self.outage.check()
        self.credit_note_calls += 1
        posted = await self.inner.post_credit_note(request)
        self.outage.answer()
        return posted


__all__ = [
    "BLUE",
    "FORCING",
    "ONRECEIPT",
    "OUTLET",
    "RED",
    "LedgerBucket",
    "LosingErp",
    "Outage",
    "blue",
    "create_return",
    "events_of",
    "inspection",
    "receipt",
    "red",
    "refunds_by_kind",
    "return_payload",
    "shipped_order",
    "statuses",
]
