"""The partner event feed: a channel's own events in commit order, with stable cursors."""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

import pytest

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.event_retention import EventPurge
from gateway_infra.unit_of_work import UnitOfWork
from partner_api.events import PARTNER_EVENT_TYPES
from tests.factories import seed_products
from tests.partner.conftest import Caller
from tests.partner.test_partner_orders import key, v1_order, v2_order


async def sequenced(gateway: Gateway) -> None:
    await gateway.sequencer.run_once()


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_partner_reads_its_own_order_events_in_commit_order(
    gateway: Gateway, webshop: Caller, marketplace: Caller, version: str
) -> None:
    seed_products(gateway)
    mine = await webshop.http.post("/partner/v2/orders", json=v2_order("FEED-1"), headers=key())
    theirs = await marketplace.http.post(
        "/partner/v1/orders", json=v1_order("FEED-2"), headers=key()
    )
    assert (mine.status_code, theirs.status_code) == (201, 201)
    await sequenced(gateway)

    response = await webshop.http.get(f"/partner/{version}/events")

    assert response.status_code == 200, response.text
    page = response.json()
    order_id = mine.json()["order_id"]
    assert [(e["type"], e["subject"]) for e in page["items"]] == [
        ("order.received", f"order/{order_id}"),
        ("order.accepted", f"order/{order_id}"),
    ]
    assert all(e["channel"] == "webshop" for e in page["items"])
    # Internal events (reservations, availability of other channels, exceptions) stay inside.
    assert {e["type"] for e in page["items"]} <= {"order.received", "order.accepted"}


async def test_the_cursor_continues_exactly_where_the_last_page_ended(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_products(gateway)
    for n in range(3):
        await webshop.http.post("/partner/v2/orders", json=v2_order(f"CUR-{n}"), headers=key())
    await sequenced(gateway)

    first = (await webshop.http.get("/partner/v2/events", params={"limit": 4})).json()
    rest = (
        await webshop.http.get("/partner/v2/events", params={"after": first["next_cursor"]})
    ).json()
    again = (
        await webshop.http.get("/partner/v2/events", params={"after": first["next_cursor"]})
    ).json()
    idle = (
        await webshop.http.get("/partner/v2/events", params={"after": rest["next_cursor"]})
    ).json()

    ids = [e["id"] for e in first["items"] + rest["items"]]
    assert len(first["items"]) == 4
    assert len(ids) == len(set(ids)) == 6
    assert again == rest
    assert idle == {"items": [], "next_cursor": rest["next_cursor"]}


async def test_events_not_yet_sequenced_are_not_shown_and_later_come_in_order(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_products(gateway)
    await webshop.http.post("/partner/v2/orders", json=v2_order("SEQ-1"), headers=key())
    before = (await webshop.http.get("/partner/v2/events")).json()
    await sequenced(gateway)
    after = (
        await webshop.http.get("/partner/v2/events", params={"after": before["next_cursor"]})
    ).json()

    assert before == {"items": [], "next_cursor": "0"}
    assert [e["type"] for e in after["items"]] == ["order.received", "order.accepted"]


@pytest.mark.parametrize("cursor", ["-1", "abc", "1" * 19, ""])
async def test_a_malformed_cursor_is_a_422_problem(webshop: Caller, cursor: str) -> None:
    response = await webshop.http.get("/partner/v2/events", params={"after": cursor})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_reading_events_needs_the_events_scope(read_only: Caller) -> None:
    response = await read_only.http.get("/partner/v2/events")

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"


def test_every_event_type_offered_to_partners_is_one_the_gateway_emits() -> None:
    sources = "\n".join(
        path.read_text()
        for package in ("process_api", "system_api", "gateway_infra")
        for path in (Path(__file__).parents[2] / package).rglob("*.py")
    )

    never_emitted = [t for t in PARTNER_EVENT_TYPES if f'"{t}"' not in sources]

    assert never_emitted == []


async def test_a_cursor_older_than_the_purged_events_answers_410(
    gateway: Gateway, webshop: Caller, clock: ManualClock
) -> None:
    def emit(uow: UnitOfWork, *, n: int) -> None:
        uow.emit("order.accepted", source="tests", subject=f"order/{n}", channel="webshop", data={})

    for n in range(3):
        await gateway.store.write(functools.partial(emit, n=n))
    await gateway.sequencer.run_once()
    clock.advance(timedelta(minutes=2))  # past a retention of one minute; tokens still valid
    await EventPurge(gateway.store, retention=timedelta(minutes=1)).purge()

    gone = await webshop.http.get("/partner/v2/events", params={"after": "1"})
    restart = await webshop.http.get("/partner/v2/events")

    assert gone.status_code == 410
    assert gone.headers["content-type"] == "application/problem+json"
    assert gone.json()["type"] == "/problems/gone"
    assert [e["subject"] for e in restart.json()["items"]] == ["order/2"]
