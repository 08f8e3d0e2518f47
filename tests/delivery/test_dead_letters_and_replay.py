"""Dead letters, replay, re-send and disabled endpoints, through the process API."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import AttemptOutcome, DeliveryState
from tests.conftest import register_and_authorize
from tests.delivery.conftest import (
    Receiver,
    all_deliveries,
    emit,
    pending,
    pump,
    pump_until_settled,
    subscribe,
)


async def fail_until_dead(gateway: Gateway, clock: ManualClock) -> None:
    for _ in range(40):
        await pump(gateway)
        if not await pending(gateway):
            return
        clock.advance(timedelta(seconds=4))
    raise AssertionError("deliveries still pending")


async def test_a_receiver_that_never_recovers_leaves_dead_letters_that_replay_once_fixed(
    gateway: Gateway, receiver: Receiver, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await subscribe(gateway, receiver)
    receiver.failing = True
    first = await emit(gateway, "order.accepted", "order/ord_1")
    second = await emit(gateway, "order.shipped", "order/ord_1")
    await fail_until_dead(gateway, clock)

    listed = await client.get("/process/v1/deliveries/dead-letters", params={"channel": "webshop"})
    assert listed.status_code == 200, listed.text
    dead = listed.json()["items"]
    # Each gave up after its five attempts; the second waited for the first, then had its own.
    assert [d["event_id"] for d in dead] == [str(first.id), str(second.id)]
    assert all(d["state"] == "dead" and d["attempts"] == 5 for d in dead)
    attempts = await client.get(f"/process/v1/deliveries/{dead[0]['delivery_id']}/attempts")
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in attempts.json()["items"]] == [
        (n, "failed", 503) for n in range(1, 6)
    ]
    assert all(a["error"] == "HTTP 503" and a["latency_ms"] >= 0 for a in attempts.json()["items"])

    receiver.failing = False
    one = await client.post(f"/process/v1/deliveries/{dead[0]['delivery_id']}/replay")
    rest = await client.post("/process/v1/deliveries/replay", json={"channel": "webshop"})
    await pump_until_settled(gateway, clock)

    assert one.status_code == 200, one.text
    assert (one.json()["state"], one.json()["attempts"]) == ("pending", 0)
    assert rest.json() == {"replayed": 1}
    assert [e["id"] for e in receiver.accepted] == [str(first.id), str(second.id)]
    assert all(d.state is DeliveryState.DELIVERED for d in await all_deliveries(gateway))
    empty = await client.get("/process/v1/deliveries/dead-letters")
    assert empty.json() == {"items": [], "next_cursor": None}


async def test_a_time_range_is_sent_again_to_the_channels_webhooks(
    gateway: Gateway, receiver: Receiver, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await subscribe(gateway, receiver, types=["order.accepted"])
    start = clock.now()
    early = await emit(gateway, "order.accepted", "order/ord_1")
    clock.advance(timedelta(seconds=10))
    middle = await emit(gateway, "order.accepted", "order/ord_2")
    await emit(gateway, "order.shipped", "order/ord_2")
    clock.advance(timedelta(seconds=10))
    await emit(gateway, "order.accepted", "order/ord_3")
    await pump_until_settled(gateway, clock)
    assert len(receiver.accepted) == 3

    response = await client.post(
        "/process/v1/deliveries/resend",
        json={
            "channel": "webshop",
            "from": start.isoformat(),
            "to": (start + timedelta(seconds=15)).isoformat(),
        },
    )
    await pump_until_settled(gateway, clock)

    assert response.status_code == 200, response.text
    assert response.json() == {"scheduled": 2}
    again = receiver.accepted[3:]
    assert [e["id"] for e in again] == [str(early.id), str(middle.id)]


async def test_replay_answers_problems_for_unknown_and_undead_deliveries(
    gateway: Gateway, receiver: Receiver, client: httpx.AsyncClient
) -> None:
    await subscribe(gateway, receiver)
    await emit(gateway, "order.accepted", "order/ord_1")
    await pump(gateway)
    [delivered] = await all_deliveries(gateway)

    unknown = await client.post("/process/v1/deliveries/999999/replay")
    undead = await client.post(f"/process/v1/deliveries/{delivered.delivery_id}/replay")
    backwards = await client.post(
        "/process/v1/deliveries/resend",
        json={"channel": "webshop", "from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
    )
    bad_id = await client.get("/process/v1/deliveries/not-a-number")

    assert (unknown.status_code, unknown.json()["code"]) == (404, "not-found")
    assert (undead.status_code, undead.json()["code"]) == (409, "delivery-not-replayable")
    assert (backwards.status_code, backwards.json()["code"]) == (422, "validation-error")
    assert bad_id.status_code == 404  # delivery ids are numbers: no such resource
    for answer in (unknown, undead, backwards, bad_id):
        assert answer.headers["content-type"] == "application/problem+json"


async def test_delivery_operations_need_their_scopes(
    gateway: Gateway, anonymous: httpx.AsyncClient
) -> None:
    _, reader = await register_and_authorize(
        gateway,
        anonymous,
        kind=ClientKind.INTERNAL,
        scopes=frozenset({"process:deliveries:read"}),
    )

    listed = await anonymous.get("/process/v1/deliveries/dead-letters", headers=reader)
    replay = await anonymous.post(
        "/process/v1/deliveries/replay", json={"channel": "webshop"}, headers=reader
    )

    assert listed.status_code == 200
    assert replay.status_code == 403
    assert AttemptOutcome.SUCCEEDED.value == "succeeded"
