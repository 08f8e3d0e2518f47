"""Refunds a channel makes on its own (Amazon at the first carrier scan, Walmart before arrival):
the return is marked channel refunded and reconciled: inspection still happens, the ERP still
credits the refund, and goods that come back bad raise a claim with the amount at risk."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

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

CHANNEL = "amazonish"


def channel_refund(amount: str, refund_id: str = "AMZ-R-1") -> dict[str, Any]:
    return {
        "channel_refund_id": refund_id,
        "amount": {"amount": amount, "currency": "EUR"},
        "refunded_at": "2026-01-01T11:30:00Z",
    }


async def _exceptions(client: httpx.AsyncClient, return_id: str) -> dict[str, dict[str, Any]]:
    listed = await client.get("/process/v1/exceptions", params={"subject": f"return/{return_id}"})
    return {item["code"]: item for item in listed.json()["items"]}


async def _refunded_by_channel(
    gateway: Gateway, client: httpx.AsyncClient, name: str, *, amount: str
) -> str:
    order_id = await shipped_order(gateway, client, name, red(2), blue(1), channel=CHANNEL)
    ret = await create_return(
        client, order_id, f"RMA-{name}", ("1", RED, 2), ("2", BLUE, 1), channel=CHANNEL
    )
    marked = await client.post(
        f"/process/v1/returns/{ret['return_id']}/channel-refund", json=channel_refund(amount)
    )
    assert marked.status_code == 200, marked.text
    return str(ret["return_id"])


async def test_a_channel_refund_of_good_goods_is_credited_after_inspection_without_a_claim(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    return_id = await _refunded_by_channel(gateway, client, "CHF-1", amount="35.30")
    marked = (await client.get(f"/process/v1/returns/{return_id}")).json()
    assert marked["status"] == "in_transit"  # refunded at the first carrier scan
    assert marked["channel_refund"]["channel_refund_id"] == "AMZ-R-1"
    assert refunds_by_kind(marked)["channel"]["state"] == "awaiting_inspection"
    assert await erp_credit_notes_of(gateway, return_id) == []
    assert (await client.post(f"/process/v1/returns/{return_id}/approve-refund")).status_code == 409

    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2), ("2", 1)))
    assert await erp_credit_notes_of(gateway, return_id) == []  # received, not inspected
    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2), ("2", "resellable", "restock", 1)),
    )

    ret = inspected.json()
    assert ret["status"] == "channel_refunded"
    assert refunds_by_kind(ret)["channel"]["state"] == "posted"
    assert refunds_by_kind(ret)["channel"]["channel_refunded"] is True
    assert [t for _, t in await erp_credit_notes_of(gateway, return_id)] == [Decimal("35.30")]
    assert await _exceptions(client, return_id) == {}
    assert await events_of(gateway, "return.refunded") == []  # the channel paid: nothing to tell
    [credited] = await events_of(gateway, "return.channel_refund_credited")
    assert credited["data"]["return_id"] == return_id
    closed = await client.post(f"/process/v1/returns/{return_id}/close")
    assert statuses(closed.json()) == [
        "requested",
        "authorized",
        "in_transit",
        "received",
        "inspected",
        "channel_refunded",
        "closed",
    ]


async def test_damaged_goods_the_channel_refunded_raise_a_claim_with_the_amount_at_risk(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    return_id = await _refunded_by_channel(gateway, client, "CHF-2", amount="35.30")
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2), ("2", 1)))

    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(
            ("1", "resellable", "restock", 1),
            ("1", "damaged", "quarantine", 1),
            ("2", "resellable", "restock", 1),
        ),
    )

    assert inspected.json()["status"] == "channel_refunded"
    assert [t for _, t in await erp_credit_notes_of(gateway, return_id)] == [Decimal("35.30")]
    claims = await _exceptions(client, return_id)
    assert set(claims) == {"claim_against_channel"}
    claim = claims["claim_against_channel"]
    assert claim["workflow"] == "returns"
    assert claim["channel"] == CHANNEL
    assert claim["money_at_risk"] == {"amount": "12.90", "currency": "EUR"}
    assert "1 damaged" in claim["detail"]


async def test_goods_the_channel_refunded_that_never_arrived_are_a_refund_without_goods(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    return_id = await _refunded_by_channel(gateway, client, "CHF-3", amount="35.30")
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2)))

    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 1), ("1", "missing", "scrap", 1)),
    )

    assert inspected.json()["status"] == "channel_refunded"
    claims = await _exceptions(client, return_id)
    assert set(claims) == {"refund_without_goods"}
    # One red mug graded missing (an empty box) and the blue mug that never came.
    assert claims["refund_without_goods"]["money_at_risk"]["amount"] == "22.40"


async def test_a_channel_refund_after_ours_is_a_double_refund_exception(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "CHF-4", red(1), channel=CHANNEL)
    ret = await create_return(client, order_id, "RMA-CHF-4", ("1", RED, 1), channel=CHANNEL)
    return_id = ret["return_id"]
    await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 1)))
    await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 1)),
    )
    await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    marked = await client.post(
        f"/process/v1/returns/{return_id}/channel-refund", json=channel_refund("12.90")
    )

    assert marked.status_code == 200
    assert marked.json()["status"] == "refunded"
    assert [t for _, t in await erp_credit_notes_of(gateway, return_id)] == [Decimal("12.90")]
    excess = (await _exceptions(client, return_id))["channel_refund_excess"]
    assert excess["money_at_risk"] == {"amount": "12.90", "currency": "EUR"}


async def test_the_same_channel_refund_told_twice_changes_nothing_and_another_conflicts(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    return_id = await _refunded_by_channel(gateway, client, "CHF-5", amount="20.00")

    again = await client.post(
        f"/process/v1/returns/{return_id}/channel-refund", json=channel_refund("20.00")
    )
    other = await client.post(
        f"/process/v1/returns/{return_id}/channel-refund",
        json=channel_refund("20.00", refund_id="AMZ-R-2"),
    )

    assert again.status_code == 200
    assert len(again.json()["history"]) == len(
        (await client.get(f"/process/v1/returns/{return_id}")).json()["history"]
    )
    assert other.status_code == 409
    [marked] = await events_of(gateway, "return.channel_refunded")
    assert marked["data"]["amount"] == {"amount": "20.00", "currency": "EUR"}
