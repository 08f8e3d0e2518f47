"""The reconciliation report of a period: ERP credit notes vs WMS receipts vs channel refunds,
every mismatch listed with its amount."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.process.returns.support import (
    BLUE,
    RED,
    blue,
    create_return,
    inspection,
    receipt,
    red,
    shipped_order,
)


def _mismatches(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(m["return_id"], m["code"]): m["amount"]["amount"] for m in report["mismatches"]}


async def test_the_report_lists_every_disagreement_with_its_amount(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    start = clock.now()
    # Refunded at once by policy, goods not back yet: credited without receipt.
    outlet = await shipped_order(gateway, client, "REC-1", blue(1, line_id="1"), channel="outlet")
    early = await create_return(client, outlet, "RMA-REC-1", ("1", BLUE, 1), channel="outlet")
    # Refunded by the channel before arrival, nothing received or credited yet.
    forced_order = await shipped_order(gateway, client, "REC-2", red(2), channel="amazonish")
    forced = await create_return(
        client, forced_order, "RMA-REC-2", ("1", RED, 2), channel="amazonish"
    )
    await client.post(
        f"/process/v1/returns/{forced['return_id']}/channel-refund",
        json={
            "channel_refund_id": "AMZ-REC-2",
            "amount": {"amount": "25.80", "currency": "EUR"},
            "refunded_at": "2026-01-01T12:00:00Z",
        },
    )
    # Received, inspected and refunded after inspection: in agreement.
    clean_order = await shipped_order(gateway, client, "REC-3", red(1))
    clean = await create_return(client, clean_order, "RMA-REC-3", ("1", RED, 1))
    await client.post(f"/process/v1/returns/{clean['return_id']}/receive", json=receipt(("1", 1)))
    await client.post(
        f"/process/v1/returns/{clean['return_id']}/inspect",
        json=inspection(("1", "resellable", "restock", 1)),
    )
    await client.post(f"/process/v1/returns/{clean['return_id']}/approve-refund")
    end = clock.advance(timedelta(seconds=1))

    response = await client.get(
        "/process/v1/returns/reconciliation",
        params={"from": start.isoformat(), "to": end.isoformat()},
    )

    assert response.status_code == 200, response.text
    report = response.json()
    assert _mismatches(report) == {
        (early["return_id"], "credited_without_receipt"): "9.50",
        (forced["return_id"], "channel_refund_not_credited"): "25.80",
        (forced["return_id"], "channel_refund_without_receipt"): "25.80",
    }
    [totals] = report["totals"]
    assert totals["returns"] == 3
    assert totals["credited"]["amount"] == "22.40"
    assert totals["received"]["amount"] == "12.90"
    assert totals["channel_refunded"]["amount"] == "25.80"

    await client.post(f"/process/v1/returns/{forced['return_id']}/receive", json=receipt(("1", 2)))
    await client.post(
        f"/process/v1/returns/{forced['return_id']}/inspect",
        json=inspection(("1", "resellable", "restock", 2)),
    )
    later = await client.get(
        "/process/v1/returns/reconciliation",
        params={"from": start.isoformat(), "to": end.isoformat(), "channel": "amazonish"},
    )
    assert later.json()["mismatches"] == []


async def test_a_period_covers_the_returns_created_in_it_only(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    order_id = await shipped_order(gateway, client, "REC-4", blue(1, line_id="1"), channel="outlet")
    await create_return(client, order_id, "RMA-REC-4", ("1", BLUE, 1), channel="outlet")
    after = clock.advance(timedelta(seconds=1))

    empty = await client.get(
        "/process/v1/returns/reconciliation",
        params={"from": after.isoformat(), "to": (after + timedelta(days=1)).isoformat()},
    )
    backwards = await client.get(
        "/process/v1/returns/reconciliation",
        params={"from": after.isoformat(), "to": after.isoformat()},
    )

    assert empty.json()["mismatches"] == [] and empty.json()["totals"] == []
    assert backwards.status_code == 422
