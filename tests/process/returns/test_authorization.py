"""Authorization by the channel's profile: shipped lines only, inside the return window counted
from shipment, never more than shipped minus already returned; a refusal lists every reason."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.process.fulfilment.support import released_order
from tests.process.returns.support import (
    BLUE,
    RED,
    blue,
    create_return,
    events_of,
    red,
    return_payload,
    shipped_order,
    statuses,
)


async def test_a_return_breaking_every_rule_is_refused_with_every_reason(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    # The webshop's window is 30 days; this order shipped 31 days ago.
    shipped_at = clock.now() - timedelta(days=31)
    order_id = await shipped_order(
        gateway, client, "REF-1", red(3), blue(1), shipped_at=shipped_at, only=("1",)
    )

    response = await client.post(
        "/process/v1/returns",
        json=return_payload(order_id, "RMA-REF-1", ("1", RED, 5), ("2", BLUE, 1), ("9", RED, 1)),
    )

    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/return-refused"
    assert sorted((r["line_id"], r["code"]) for r in problem["reasons"]) == [
        ("1", "outside_return_window"),
        ("1", "quantity_exceeds_returnable"),
        ("2", "not_shipped"),
        ("9", "unknown_line"),
    ]
    stored = (await client.get(f"/process/v1/returns/{problem['return_id']}")).json()
    assert stored["status"] == "refused"
    assert statuses(stored) == ["requested", "refused"]
    assert len(stored["refusals"]) == 4
    assert stored["refunds"] == []
    [event] = await events_of(gateway, "return.refused")
    assert event["channel"] == "webshop"


async def test_an_order_not_shipped_yet_cannot_be_returned(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await released_order(client, "REF-2", red(1))

    response = await client.post(
        "/process/v1/returns", json=return_payload(order_id, "RMA-REF-2", ("1", RED, 1))
    )

    assert response.status_code == 409
    assert [r["code"] for r in response.json()["reasons"]] == ["not_shipped"]


async def test_the_window_counts_from_shipment_and_is_open_on_its_last_instant(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    shipped_at = clock.now() - timedelta(days=30)
    order_id = await shipped_order(gateway, client, "REF-3", red(2), shipped_at=shipped_at)

    inside = await client.post(
        "/process/v1/returns", json=return_payload(order_id, "RMA-REF-3a", ("1", RED, 1))
    )
    clock.advance(timedelta(seconds=1))
    outside = await client.post(
        "/process/v1/returns", json=return_payload(order_id, "RMA-REF-3b", ("1", RED, 1))
    )

    assert inside.status_code == 201, inside.text
    assert outside.status_code == 409
    assert [r["code"] for r in outside.json()["reasons"]] == ["outside_return_window"]


async def test_units_already_returned_are_not_returnable_again_unless_that_return_was_refused(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "REF-4", red(3), blue(1))
    await create_return(client, order_id, "RMA-REF-4a", ("1", RED, 2))
    refused = await client.post(
        "/process/v1/returns", json=return_payload(order_id, "RMA-REF-4b", ("1", RED, 2))
    )
    assert refused.status_code == 409
    [reason] = refused.json()["reasons"]
    assert reason["code"] == "quantity_exceeds_returnable"
    assert "at most 1 returnable" in reason["detail"]

    last = await create_return(client, order_id, "RMA-REF-4c", ("1", RED, 1), ("2", BLUE, 1))

    assert last["status"] == "authorized"


async def test_the_same_channel_return_is_recorded_once(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "REF-5", red(2))
    first = await create_return(client, order_id, "RMA-REF-5", ("1", RED, 1))

    again = await client.post(
        "/process/v1/returns", json=return_payload(order_id, "RMA-REF-5", ("1", RED, 1))
    )
    other = await client.post(
        "/process/v1/returns", json=return_payload(order_id, "RMA-REF-5", ("1", RED, 2))
    )

    assert again.status_code == 200
    assert again.json()["return_id"] == first["return_id"]
    assert other.status_code == 409
    assert other.json()["type"] == "/problems/return-conflict"
    listed = (await client.get("/process/v1/returns", params={"order_id": order_id})).json()
    assert [r["return_id"] for r in listed["items"]] == [first["return_id"]]


async def test_an_unknown_order_or_another_channels_order_is_not_found(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "REF-6", red(1))

    unknown = await client.post(
        "/process/v1/returns", json=return_payload("ord_nope", "RMA-REF-6a", ("1", RED, 1))
    )
    foreign = await client.post(
        "/process/v1/returns",
        json=return_payload(order_id, "RMA-REF-6b", ("1", RED, 1), channel="marketplace"),
    )

    assert unknown.status_code == foreign.status_code == 404
    assert foreign.headers["content-type"] == "application/problem+json"
