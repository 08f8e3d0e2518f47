"""Partner webhook management (/partner/v1|v2/webhooks), and a partner order reaching its hook."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import ManualClock
from gateway_infra.delivery.tables import subscriptions
from partner_api.events import PARTNER_EVENT_TYPES
from partner_api.tables import idempotency_keys
from tests.conftest import BASE_URL, register_and_authorize
from tests.delivery.conftest import Receiver, pump_until_settled
from tests.factories import seed_products


@dataclass
class Partner:
    client_id: str
    http: httpx.AsyncClient


async def _partner(
    gateway: Gateway, app: FastAPI, channel: str, scopes: frozenset[str]
) -> AsyncIterator[Partner]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        client_id, headers = await register_and_authorize(
            gateway, http, kind=ClientKind.PARTNER, scopes=scopes, channel=channel
        )
        http.headers.update(headers)
        yield Partner(client_id, http)


@pytest.fixture
async def webshop(gateway: Gateway, app: FastAPI) -> AsyncIterator[Partner]:
    async for caller in _partner(gateway, app, "webshop", frozenset(PARTNER_SCOPES)):
        yield caller


@pytest.fixture
async def marketplace(gateway: Gateway, app: FastAPI) -> AsyncIterator[Partner]:
    async for caller in _partner(gateway, app, "marketplace", frozenset(PARTNER_SCOPES)):
        yield caller


def key() -> dict[str, str]:
    return {"Idempotency-Key": f'"{uuid.uuid4()}"'}


def hook(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return {"url": f"{receiver.url}/hook", "event_types": ["order.accepted"], **extra}


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_partner_registers_a_webhook_and_gets_its_secret_once(
    webshop: Partner, receiver: Receiver, version: str
) -> None:
    created = await webshop.http.post(
        f"/partner/{version}/webhooks", json=hook(receiver, description="orders"), headers=key()
    )

    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["id"].startswith("whk_")
    assert created.headers["location"].endswith(f"/partner/{version}/webhooks/{body['id']}")
    assert {k: body[k] for k in ("url", "event_types", "state", "secret_version")} == {
        "url": f"{receiver.url}/hook",
        "event_types": ["order.accepted"],
        "state": "active",
        "secret_version": 1,
    }
    read = await webshop.http.get(f"/partner/{version}/webhooks/{body['id']}")
    listed = await webshop.http.get(f"/partner/{version}/webhooks")
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert read.json() == {k: v for k, v in body.items() if k != "secret"}
    assert [w["id"] for w in listed.json()["items"]] == [body["id"]]


async def test_the_secret_is_stored_encrypted_and_a_retry_answers_the_same_one(
    gateway: Gateway, webshop: Partner, receiver: Receiver
) -> None:
    headers = key()
    first = await webshop.http.post("/partner/v2/webhooks", json=hook(receiver), headers=headers)
    again = await webshop.http.post("/partner/v2/webhooks", json=hook(receiver), headers=headers)
    other = await webshop.http.post(
        "/partner/v2/webhooks", json=hook(receiver, description="x"), headers=headers
    )

    secret = first.json()["secret"]
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 422
    stored = await gateway.store.read(
        lambda conn: (
            list(conn.execute(select(subscriptions.c.secret)).scalars()),
            [bytes(b) for b in conn.execute(select(idempotency_keys.c.response_body)).scalars()],
        )
    )
    sealed, answers = stored
    assert len(sealed) == 1
    assert secret not in sealed[0]
    assert all(secret.encode() not in answer for answer in answers)


async def test_rotating_answers_a_new_secret_and_the_overlap(
    webshop: Partner, receiver: Receiver
) -> None:
    made = await webshop.http.post("/partner/v2/webhooks", json=hook(receiver), headers=key())
    webhook_id = made.json()["id"]

    rotated = await webshop.http.post(
        f"/partner/v1/webhooks/{webhook_id}/rotate-secret",
        json={"overlap_seconds": 3600},
        headers=key(),
    )
    default = await webshop.http.post(
        f"/partner/v2/webhooks/{webhook_id}/rotate-secret", headers=key()
    )
    too_long = await webshop.http.post(
        f"/partner/v2/webhooks/{webhook_id}/rotate-secret",
        json={"overlap_seconds": 8 * 24 * 3600},
        headers=key(),
    )

    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] not in (made.json()["secret"], None)
    assert rotated.json()["secret_version"] == 2
    assert rotated.json()["previous_secret_expires_at"] is not None
    assert default.status_code == 200
    assert default.json()["secret_version"] == 3
    assert too_long.status_code == 422
    assert too_long.headers["content-type"] == "application/problem+json"


async def test_a_partner_sees_and_changes_its_own_webhooks_only(
    webshop: Partner, marketplace: Partner, receiver: Receiver
) -> None:
    made = await webshop.http.post("/partner/v2/webhooks", json=hook(receiver), headers=key())
    webhook_id = made.json()["id"]

    foreign_read = await marketplace.http.get(f"/partner/v2/webhooks/{webhook_id}")
    foreign_delete = await marketplace.http.delete(f"/partner/v2/webhooks/{webhook_id}")
    foreign_rotate = await marketplace.http.post(
        f"/partner/v2/webhooks/{webhook_id}/rotate-secret", headers=key()
    )
    foreign_list = await marketplace.http.get("/partner/v2/webhooks")
    deleted = await webshop.http.delete(f"/partner/v2/webhooks/{webhook_id}")
    gone = await webshop.http.get(f"/partner/v2/webhooks/{webhook_id}")
    deleted_again = await webshop.http.delete(f"/partner/v2/webhooks/{webhook_id}")

    assert [r.status_code for r in (foreign_read, foreign_delete, foreign_rotate)] == [404] * 3
    assert foreign_list.json() == {"items": []}
    assert deleted.status_code == 204
    assert (gone.status_code, deleted_again.status_code) == (404, 404)
    assert gone.headers["content-type"] == "application/problem+json"


ACCEPTED = ["order.accepted"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"url": "http://10.0.0.5/hook", "event_types": ACCEPTED}, "webhook-refused"),
        ({"url": "http://169.254.169.254/latest", "event_types": ACCEPTED}, "webhook-refused"),
        ({"url": "https://[::ffff:10.0.0.1]/", "event_types": ACCEPTED}, "webhook-refused"),
        ({"url": "http://127.0.0.1:1/", "event_types": ["inventory.reserved"]}, "validation-error"),
        ({"url": "http://127.0.0.1:1/hook", "event_types": []}, "validation-error"),
        ({"url": "http://127.0.0.1:1/hook"}, "validation-error"),
    ],
)
async def test_unacceptable_webhooks_are_refused_with_a_problem(
    webshop: Partner, body: dict[str, Any], code: str
) -> None:
    response = await webshop.http.post("/partner/v2/webhooks", json=body, headers=key())

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


async def test_webhooks_need_the_events_scope_and_an_idempotency_key(
    gateway: Gateway, app: FastAPI, receiver: Receiver, webshop: Partner
) -> None:
    async for reader in _partner(gateway, app, "webshop", frozenset({"orders:read"})):
        forbidden = await reader.http.post(
            "/partner/v2/webhooks", json=hook(receiver), headers=key()
        )
        listing = await reader.http.get("/partner/v2/webhooks")
    keyless = await webshop.http.post("/partner/v2/webhooks", json=hook(receiver))

    assert (forbidden.status_code, listing.status_code) == (403, 403)
    assert keyless.status_code == 400


async def test_a_partners_order_reaches_its_webhook(
    gateway: Gateway, webshop: Partner, receiver: Receiver, clock: ManualClock
) -> None:
    seed_products(gateway)
    made = await webshop.http.post(
        "/partner/v2/webhooks",
        json={"url": f"{receiver.url}/hook", "event_types": ["order.received", "order.accepted"]},
        headers=key(),
    )
    receiver.secrets.append(made.json()["secret"])
    order = await webshop.http.post(
        "/partner/v2/orders",
        json={
            "channel_order_id": "HOOK-1",
            "currency": "EUR",
            "lines": [
                {
                    "line_id": "1",
                    "sku": "MUG-RED-350",
                    "quantity": 1,
                    "unit_price": {"amount_minor": 1290, "currency": "EUR"},
                }
            ],
        },
        headers=key(),
    )
    assert order.status_code == 201, order.text

    await pump_until_settled(gateway, clock)

    order_id = order.json()["order_id"]
    assert [(e["type"], e["subject"]) for e in receiver.accepted] == [
        ("order.received", f"order/{order_id}"),
        ("order.accepted", f"order/{order_id}"),
    ]
    feed = await webshop.http.get("/partner/v2/events")
    assert [e["id"] for e in receiver.accepted] == [e["id"] for e in feed.json()["items"]]


def test_the_webhook_guide_names_exactly_the_event_types_a_webhook_may_take() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "webhooks.md").read_text()
    section = guide.split("Event types a webhook may name:", 1)[1].split("Only the calling", 1)[0]

    assert re.findall(r"`([a-z_.]+)`", section) == list(PARTNER_EVENT_TYPES), (
        "docs/webhooks.md lists other event types than partner_api.events.PARTNER_EVENT_TYPES"
    )
