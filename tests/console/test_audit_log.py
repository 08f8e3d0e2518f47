"""The audit log: changes of channel profiles and price books through the process API, and
operators' actions in the console, with who, when, before and after; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PROCESS_SCOPES
from gateway_infra.clock import ManualClock
from process_api.audit import AuditLog
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from tests.conftest import (
    make_settings,
    provisioned_database,
    register_and_authorize,
    start_gateway,
)
from tests.factories import seed_products


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with provisioned_database(request.param, tmp_path) as url:
        yield url


def webshop_profile() -> dict[str, Any]:
    """The demo web shop's profile, on the one throttling tier the tests configure."""
    profile = DEMO_CHANNEL_PROFILES[0].model_dump(mode="json")
    return {**profile, "throttling_tier": "standard"}


async def test_a_channel_profile_change_through_the_process_api_is_audited_with_before_and_after(
    client: httpx.AsyncClient,
) -> None:
    profile = webshop_profile()
    created = await client.put("/process/v1/channels/webshop", json=profile)
    changed = await client.put(
        "/process/v1/channels/webshop", json={**profile, "name": "Own webshop (EU)"}
    )
    assert created.status_code == 201, created.text
    assert changed.status_code == 200, changed.text

    page = await client.get("/process/v1/audit", params={"subject": "channel_profile/webshop"})

    assert page.status_code == 200, page.text
    latest, first = page.json()["items"]
    assert latest["actor"].startswith("client:")
    assert latest["action"] == "channel_profile.changed"
    assert latest["channel"] == "webshop"
    assert latest["before"]["name"] == profile["name"]
    assert latest["after"]["name"] == "Own webshop (EU)"
    assert first["before"] is None
    assert first["after"]["channel"] == "webshop"
    assert latest["id"] > first["id"]
    assert latest["at"] >= first["at"]


async def test_price_book_changes_are_audited_in_their_own_transaction(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    await client.put("/process/v1/channels/webshop", json=webshop_profile())
    book = await client.post("/process/v1/price-books", json={"channel": "webshop"})
    assert book.status_code == 201, book.text
    book_id = book.json()["book_id"]
    entry = await client.put(
        f"/process/v1/price-books/{book_id}/versions/1/entries/MUG-RED-350",
        json={"floor_price": {"amount": "9.00", "currency": "EUR"}},
    )
    assert entry.status_code == 200, entry.text
    published = await client.post(f"/process/v1/price-books/{book_id}/versions/1/publish")
    assert published.status_code == 200, published.text
    refused = await client.put(  # a published version is never edited: nothing to audit
        f"/process/v1/price-books/{book_id}/versions/1/entries/MUG-RED-350", json={}
    )
    assert refused.status_code == 409

    page = await client.get("/process/v1/audit", params={"subject": f"price_book/{book_id}"})

    items = page.json()["items"]
    assert [i["action"] for i in items] == [
        "price_book.published",
        "price_book.entry_set",
        "price_book.created",
    ]
    publish, set_entry, _ = items
    assert set_entry["before"] is None
    assert set_entry["after"]["floor_price"]["amount"] == "9.00"
    assert publish["before"] == {"published_version": None, "entry_count": 0}
    assert publish["after"]["entry_count"] == 1
    assert [e["sku"] for e in publish["after"]["entry_changes"]["added"]] == ["MUG-RED-350"]
    assert len({i["actor"] for i in items}) == 1


async def test_reading_the_audit_log_needs_its_scope(
    gateway: Gateway, anonymous: httpx.AsyncClient
) -> None:
    _, headers = await register_and_authorize(
        gateway,
        anonymous,
        kind=ClientKind.INTERNAL,
        scopes=frozenset(PROCESS_SCOPES) - {"process:audit:read"},
    )

    refused = await anonymous.get("/process/v1/audit", headers=headers)
    unauthenticated = await anonymous.get("/process/v1/audit")

    assert refused.status_code == 403
    assert unauthenticated.status_code == 401


async def test_the_audit_log_pages_newest_first(client: httpx.AsyncClient) -> None:
    profile = webshop_profile()
    for n in range(3):
        await client.put("/process/v1/channels/webshop", json={**profile, "name": f"Shop {n}"})

    first = await client.get("/process/v1/audit", params={"limit": 2})
    rest = await client.get(
        "/process/v1/audit", params={"limit": 2, "cursor": first.json()["next_cursor"]}
    )

    names = [i["after"]["name"] for i in first.json()["items"] + rest.json()["items"]]
    assert names == ["Shop 2", "Shop 1", "Shop 0"]
    assert rest.json()["next_cursor"] is None


async def test_a_change_of_the_exception_policies_is_audited_when_a_gateway_starts(
    database_url: str, clock: ManualClock
) -> None:
    rules = '[{"name": "stock", "workflow": "inventory_sync", "owner_team": "warehouse"}]'
    for routing in (None, None, rules):
        started = start_gateway(make_settings(database_url, exception_routing=routing), clock)
        app = build_app(started, run_background=False)
        async with app.router.lifespan_context(app):  # closes the gateway on the way out
            pass

    reader = start_gateway(make_settings(database_url), clock)
    try:
        changed, first = await AuditLog(reader.store).entries(subject="exception_policies")
    finally:
        await reader.aclose()
    assert (first.actor, first.action, first.before) == (
        "config",
        "exception_policies.changed",
        None,
    )
    assert first.after["routing_rules"] == []  # type: ignore[index,call-overload]
    assert first.after["workflows"]["order_capture"]["sla_seconds"] == 1800  # type: ignore[index,call-overload]
    assert changed.before == first.after
    assert changed.after["routing_rules"] == [  # type: ignore[index,call-overload]
        {"name": "stock", "workflow": "inventory_sync", "owner_team": "warehouse"}
    ]
