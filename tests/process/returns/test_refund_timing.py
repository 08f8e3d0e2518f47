"""Refund timing per channel and line: after inspection by default, on receipt, or at once for
lines below the channel's immediate refund limit."""

from __future__ import annotations

from decimal import Decimal

import httpx

from gateway import Gateway
from tests.process.returns.support import (
    BLUE,
    RED,
    blue,
    create_return,
    erp_credit_notes_of,
    events_of,
    inspection,
    receipt,
    red,
    refunds_by_kind,
    shipped_order,
    statuses,
)


async def test_nothing_is_refunded_before_inspection_under_the_default_policy(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "TIM-1", red(2), blue(1))
    ret = await create_return(client, order_id, "RMA-TIM-1", ("1", RED, 2), ("2", BLUE, 1))
    return_id = ret["return_id"]
    too_early: list[httpx.Response] = [
        await client.post(f"/process/v1/returns/{return_id}/approve-refund")
    ]
    await client.post(f"/process/v1/returns/{return_id}/in-transit")
    too_early.append(await client.post(f"/process/v1/returns/{return_id}/approve-refund"))
    received = await client.post(
        f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2), ("2", 1))
    )
    too_early.append(await client.post(f"/process/v1/returns/{return_id}/approve-refund"))
    await gateway.scheduler.run_due()

    assert received.json()["refunds"] == []
    assert [r.status_code for r in too_early] == [409, 409, 409]
    assert all(r.json()["type"] == "/problems/return-state" for r in too_early)
    assert await erp_credit_notes_of(gateway, return_id) == []
    assert await events_of(gateway, "return.refunded") == []

    await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2), ("2", "resellable", "restock", 1)),
    )
    assert await erp_credit_notes_of(gateway, return_id) == []  # inspected, not approved yet
    approved = await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    assert approved.status_code == 200
    assert [total for _, total in await erp_credit_notes_of(gateway, return_id)] == [
        Decimal("35.30")
    ]


async def test_the_default_approval_refunds_resellable_units_and_a_person_may_add_damaged_ones(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "TIM-2", red(3))
    first = await create_return(client, order_id, "RMA-TIM-2a", ("1", RED, 2))
    second = await create_return(client, order_id, "RMA-TIM-2b", ("1", RED, 1))
    for ret, graded in (
        (first, [("1", "resellable", "restock", 1), ("1", "damaged", "scrap", 1)]),
        (second, [("1", "damaged", "quarantine", 1)]),
    ):
        await client.post(
            f"/process/v1/returns/{ret['return_id']}/receive",
            json=receipt(("1", sum(g[3] for g in graded))),
        )
        await client.post(
            f"/process/v1/returns/{ret['return_id']}/inspect", json=inspection(*graded)
        )

    by_default = await client.post(f"/process/v1/returns/{first['return_id']}/approve-refund")
    nothing = await client.post(f"/process/v1/returns/{second['return_id']}/approve-refund")
    too_many = await client.post(
        f"/process/v1/returns/{second['return_id']}/approve-refund",
        json={"lines": [{"line_id": "1", "quantity": 2}]},
    )
    goodwill = await client.post(
        f"/process/v1/returns/{second['return_id']}/approve-refund",
        json={"lines": [{"line_id": "1", "quantity": 1}], "note": "defect, not misuse"},
    )

    assert by_default.status_code == 200
    assert by_default.json()["refunds"][0]["amount"]["amount"] == "12.90"
    assert nothing.status_code == 409
    assert nothing.json()["type"] == "/problems/nothing-to-refund"
    assert too_many.status_code == 422
    assert too_many.json()["type"] == "/problems/return-invalid"
    assert goodwill.status_code == 200
    assert goodwill.json()["status"] == "refunded"
    assert "defect, not misuse" in goodwill.json()["history"][-2]["reason"]


async def test_a_channel_refunding_on_receipt_is_credited_for_the_units_received(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "TIM-3", red(3), channel="quickrefund")
    ret = await create_return(client, order_id, "RMA-TIM-3", ("1", RED, 3), channel="quickrefund")
    return_id = ret["return_id"]
    assert ret["lines"][0]["refund_timing"] == "on_receipt"
    assert ret["refunds"] == []

    received = await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2)))

    assert received.status_code == 200
    [refund] = received.json()["refunds"]
    assert (refund["kind"], refund["state"]) == ("on_receipt", "posted")
    assert refund["amount"]["amount"] == "25.80"  # 2 received of 3 announced
    assert received.json()["status"] == "received"
    [event] = await events_of(gateway, "return.refunded")
    assert event["channel"] == "quickrefund"

    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2)),
    )

    assert inspected.json()["status"] == "refunded"
    assert statuses(inspected.json())[-3:] == ["inspected", "refund_approved", "refunded"]
    assert inspected.json()["history"][-2]["actor"] == "gateway"
    assert len(await erp_credit_notes_of(gateway, return_id)) == 1


async def test_a_low_value_line_is_refunded_at_once_and_the_rest_after_inspection(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "TIM-4", red(1), blue(1), channel="outlet")

    ret = await create_return(
        client, order_id, "RMA-TIM-4", ("1", RED, 1), ("2", BLUE, 1), channel="outlet"
    )

    timings = {line["line_id"]: line["refund_timing"] for line in ret["lines"]}
    assert timings == {"1": "after_inspection", "2": "immediate"}  # 12.90 >= 10.00 > 9.50
    refunds = refunds_by_kind(ret)
    assert set(refunds) == {"immediate"}
    assert refunds["immediate"]["state"] == "posted"
    assert refunds["immediate"]["amount"]["amount"] == "9.50"
    assert ret["status"] == "authorized"
    return_id = ret["return_id"]
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 1), ("2", 1)))
    await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 1), ("2", "resellable", "restock", 1)),
    )
    approved = await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    assert approved.json()["status"] == "refunded"
    assert refunds_by_kind(approved.json())["approved"]["amount"]["amount"] == "12.90"
    assert sorted(t for _, t in await erp_credit_notes_of(gateway, return_id)) == [
        Decimal("9.50"),
        Decimal("12.90"),
    ]


async def test_an_early_refund_for_goods_that_come_back_damaged_raises_an_exception(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "TIM-5", blue(1, line_id="1"), channel="outlet")
    ret = await create_return(client, order_id, "RMA-TIM-5", ("1", BLUE, 1), channel="outlet")
    return_id = ret["return_id"]
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 1)))

    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "damaged", "scrap", 1)),
    )

    assert inspected.json()["status"] == "refunded"
    listed = await client.get("/process/v1/exceptions", params={"subject": f"return/{return_id}"})
    [exception] = listed.json()["items"]
    assert exception["code"] == "early_refund_bad_goods"
    assert exception["money_at_risk"] == {"amount": "9.50", "currency": "EUR"}
