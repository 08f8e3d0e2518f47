"""Dispositions: resellable goods restocked become sellable again (ledger entry, availability
republished); damaged or missing goods are quarantined or scrapped and never sellable."""

from __future__ import annotations

import httpx
import pytest

from gateway import Gateway
from tests.process.returns.support import (
    RED,
    create_return,
    events_of,
    inspection,
    ledger_reasons,
    receipt,
    red,
    shipped_order,
    wms_on_hand,
)


async def _received(gateway: Gateway, client: httpx.AsyncClient, name: str, units: int) -> str:
    order_id = await shipped_order(gateway, client, name, red(units))
    ret = await create_return(client, order_id, f"RMA-{name}", ("1", RED, units))
    return_id = str(ret["return_id"])
    received = await client.post(
        f"/process/v1/returns/{return_id}/receive", json=receipt(("1", units))
    )
    assert received.status_code == 200, received.text
    return return_id


async def test_restocked_goods_are_sellable_again_and_their_availability_is_republished(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    return_id = await _received(gateway, client, "DSP-1", 3)
    before = (await client.get(f"/process/v1/inventory/{RED}")).json()
    assert before["on_hand"] == 97  # 100 counted, 3 shipped
    assert await wms_on_hand(gateway, RED) == (97, 0)  # received goods are not sellable yet
    published = len(await events_of(gateway, "availability.changed"))

    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 3)),
    )

    assert inspected.status_code == 200, inspected.text
    assert await wms_on_hand(gateway, RED) == (100, 0)
    assert await ledger_reasons(gateway, return_id) == [("on_hand", "return_restock", 3)]
    after = (await client.get(f"/process/v1/inventory/{RED}")).json()
    assert after["on_hand"] == 100
    assert after["available"]["webshop"] == before["available"]["webshop"] + 3
    republished = (await events_of(gateway, "availability.changed"))[published:]
    assert {(e["channel"], e["data"]["sku"]) for e in republished} >= {("webshop", RED)}


@pytest.mark.parametrize(
    ("grade", "disposition", "bucket"),
    [
        ("damaged", "quarantine", "quarantined"),
        ("damaged", "scrap", "scrapped"),
        ("missing", "scrap", "scrapped"),
    ],
)
async def test_damaged_or_missing_goods_are_never_sellable(
    gateway: Gateway, client: httpx.AsyncClient, grade: str, disposition: str, bucket: str
) -> None:
    return_id = await _received(gateway, client, f"DSP-{grade}-{disposition}", 2)
    published = len(await events_of(gateway, "availability.changed"))

    inspected = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", grade, disposition, 2)),
    )

    assert inspected.status_code == 200, inspected.text
    on_hand, quarantined = await wms_on_hand(gateway, RED)
    assert on_hand == 98
    assert quarantined == (2 if bucket == "quarantined" else 0)
    assert [entry[0] for entry in await ledger_reasons(gateway, return_id)] == [bucket]
    assert (await client.get(f"/process/v1/inventory/{RED}")).json()["on_hand"] == 98
    assert len(await events_of(gateway, "availability.changed")) == published


async def test_damaged_goods_cannot_be_restocked(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    return_id = await _received(gateway, client, "DSP-2", 1)

    refused = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "damaged", "restock", 1)),
    )

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert await wms_on_hand(gateway, RED) == (99, 0)


async def test_every_received_unit_is_graded_once(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    return_id = await _received(gateway, client, "DSP-3", 2)

    short = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 1)),
    )
    done = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2)),
    )
    again = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "resellable", "restock", 2)),
    )
    other = await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json=inspection(("1", "damaged", "scrap", 2)),
    )

    assert short.status_code == 422
    assert short.json()["type"] == "/problems/return-invalid"
    assert done.status_code == again.status_code == 200
    assert other.status_code == 409
    assert await ledger_reasons(gateway, return_id) == [("on_hand", "return_restock", 2)]
