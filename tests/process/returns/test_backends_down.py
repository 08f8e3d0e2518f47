"""While the ERP or WMS is down, a return's step is kept and answered 202; a scheduler timer
finishes it later, and a refund is credited once however often it is retried."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import httpx

from contracts import Money
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.exceptions import list_exceptions
from tests.process.returns.support import (
    RED,
    Outage,
    create_return,
    credit_note_count,
    erp_credit_notes_of,
    events_of,
    failed_timers,
    inspection,
    receipt,
    red,
    shipped_order,
    wms_on_hand,
)


async def _inspected(gateway: Gateway, client: httpx.AsyncClient, name: str) -> str:
    order_id = await shipped_order(gateway, client, name, red(2))
    ret = await create_return(client, order_id, f"RMA-{name}", ("1", RED, 2))
    return_id = str(ret["return_id"])
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2)))
    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2)),
    )
    assert inspected.status_code == 200, inspected.text
    return return_id


async def test_a_refund_approved_while_the_erp_is_down_is_credited_by_the_timer_once(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, erp_outage: Outage
) -> None:
    return_id = await _inspected(gateway, client, "DWN-1")
    erp_outage.down = True

    approved = await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    assert approved.status_code == 202, approved.text
    ret = approved.json()
    assert ret["status"] == "refund_approved"
    assert ret["waiting_for"] == ["credit_note"]
    assert ret["refunds"][0]["state"] == "pending"
    clock.advance(timedelta(seconds=31))
    assert await gateway.scheduler.run_due() == 1  # still down: retried later
    assert await erp_credit_notes_of(gateway, return_id) == []

    erp_outage.down = False
    erp_outage.lose_next_answer = True  # posted, but the answer is lost on the way back
    clock.advance(timedelta(minutes=1))
    assert await gateway.scheduler.run_due() == 1
    assert await erp_credit_notes_of(gateway, return_id) != []
    assert (await client.get(f"/process/v1/returns/{return_id}")).json()["status"] == (
        "refund_approved"
    )
    clock.advance(timedelta(minutes=1))
    assert await gateway.scheduler.run_due() == 1

    refunded = (await client.get(f"/process/v1/returns/{return_id}")).json()
    assert refunded["status"] == "refunded"
    assert refunded["waiting_for"] == []
    assert [t for _, t in await erp_credit_notes_of(gateway, return_id)] == [Decimal("25.80")]
    assert await credit_note_count(gateway) == 1
    assert len(await events_of(gateway, "return.refunded")) == 1
    assert len(refunded["refunds"][0]["credit_note_ids"]) == 1
    again = await client.post(f"/process/v1/returns/{return_id}/approve-refund")
    assert again.status_code == 200
    clock.advance(timedelta(minutes=5))
    assert await gateway.scheduler.run_due() == 0
    assert await credit_note_count(gateway) == 1


async def test_a_receipt_while_the_wms_is_down_waits_and_is_recorded_by_the_timer(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, wms_outage: Outage
) -> None:
    order_id = await shipped_order(gateway, client, "DWN-2", red(2))
    ret = await create_return(client, order_id, "RMA-DWN-2", ("1", RED, 2))
    return_id = ret["return_id"]
    wms_outage.down = True

    waiting = await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2)))
    again = await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2)))
    other = await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 1)))

    assert waiting.status_code == again.status_code == 202, waiting.text
    assert waiting.json()["status"] == "authorized"
    assert waiting.json()["waiting_for"] == ["receipt"]
    assert other.status_code == 409
    wms_outage.down = False
    clock.advance(timedelta(seconds=31))
    assert await gateway.scheduler.run_due() == 1

    received = (await client.get(f"/process/v1/returns/{return_id}")).json()
    assert received["status"] == "received"
    assert received["waiting_for"] == []
    assert received["receipts"] == [{"line_id": "1", "quantity_received": 2}]
    assert received["history"][-1]["actor"].startswith("client:")


async def test_an_inspection_while_the_wms_is_down_restocks_once_the_timer_records_it(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, wms_outage: Outage
) -> None:
    order_id = await shipped_order(gateway, client, "DWN-3", red(2))
    ret = await create_return(client, order_id, "RMA-DWN-3", ("1", RED, 2))
    return_id = ret["return_id"]
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2)))
    wms_outage.down = True

    waiting = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2)),
    )
    early = await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    assert waiting.status_code == 202
    assert waiting.json()["status"] == "received"
    assert early.status_code == 409  # not inspected until the WMS recorded it
    assert await wms_on_hand(gateway, RED) == (98, 0)
    wms_outage.down = False
    clock.advance(timedelta(seconds=31))
    assert await gateway.scheduler.run_due() == 1

    assert (await client.get(f"/process/v1/returns/{return_id}")).json()["status"] == "inspected"
    assert await wms_on_hand(gateway, RED) == (100, 0)
    assert (await client.get(f"/process/v1/inventory/{RED}")).json()["on_hand"] == 100


async def test_an_erp_that_stays_down_ends_in_an_exception_with_the_amount_at_risk(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, erp_outage: Outage
) -> None:
    return_id = await _inspected(gateway, client, "DWN-4")
    erp_outage.down = True
    await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    for _ in range(60):
        clock.advance(timedelta(minutes=15))
        await gateway.scheduler.run_due()

    assert await failed_timers(gateway) == 1
    [exception] = await gateway.store.read(
        lambda conn: list_exceptions(conn, subject=f"return/{return_id}")
    )
    assert exception.code == "credit_note_not_posted"
    assert exception.workflow == "returns"
    assert exception.money_at_risk == Money(amount=Decimal("25.80"), currency="EUR")
