"""Partner order submission and reading in both API versions, behind the partner edge."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.tables import timers
from partner_api.housekeeping import PURGE_EVERY, PURGE_TIMER
from partner_api.tables import idempotency_keys
from tests.factories import line, product, seed_products, seed_stock
from tests.partner.conftest import Caller


def v1_order(channel_order_id: str, *lines: dict[str, Any]) -> dict[str, Any]:
    return {
        "channel_order_id": channel_order_id,
        "currency": "EUR",
        "lines": list(lines) or [line()],
    }


def v2_order(channel_order_id: str, quantity: int = 1, cents: int = 1290) -> dict[str, Any]:
    return {
        "channel_order_id": channel_order_id,
        "currency": "EUR",
        "lines": [
            {
                "line_id": "1",
                "sku": "MUG-RED-350",
                "quantity": quantity,
                "unit_price": {"amount_minor": cents, "currency": "EUR"},
            }
        ],
    }


def key() -> dict[str, str]:
    return {"Idempotency-Key": f'"{uuid.uuid4()}"'}


async def test_v1_order_is_accepted_and_read_back_with_decimal_string_money(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_products(gateway)

    created = await webshop.http.post(
        "/partner/v1/orders", json=v1_order("W-1", line(quantity=2)), headers=key()
    )

    assert created.status_code == 201, created.text
    order = created.json()
    assert order["status"] == "accepted"
    assert order["total"] == {"amount": "25.80", "currency": "EUR"}
    assert created.headers["location"].endswith(f"/partner/v1/orders/{order['order_id']}")
    read = await webshop.http.get(f"/partner/v1/orders/{order['order_id']}")
    assert read.status_code == 200
    assert read.json() == order


async def test_v2_order_uses_minor_units_and_quantities_per_line_status(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_products(gateway)

    created = await webshop.http.post(
        "/partner/v2/orders", json=v2_order("W-2", quantity=3), headers=key()
    )

    assert created.status_code == 201, created.text
    order = created.json()
    assert order["total"] == {"amount_minor": 3870, "currency": "EUR"}
    assert order["lines"][0]["status"] == "acknowledged"
    assert order["lines"][0]["quantities"] == {
        "created": 0,
        "acknowledged": 3,
        "rejected": 0,
        "cancelled": 0,
        "shipped": 0,
    }
    through_v1 = await webshop.http.get(f"/partner/v1/orders/{order['order_id']}")
    assert through_v1.json()["total"] == {"amount": "38.70", "currency": "EUR"}


async def test_the_channel_comes_from_the_token_not_the_payload(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_products(gateway)
    payload = {**v1_order("W-3"), "channel": "marketplace"}

    response = await webshop.http.post("/partner/v1/orders", json=payload, headers=key())

    assert response.status_code == 422  # channel is not a field partners may send


async def test_rejected_order_is_a_409_order_rejected_problem_with_reasons(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_stock(gateway, 1000, "NO-SUCH")
    seed_products(gateway)
    payload = v1_order("W-4", line("1", sku="NO-SUCH"), line("2", price="1.00"))

    response = await webshop.http.post("/partner/v1/orders", json=payload, headers=key())

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/order-rejected"
    assert {r["reason"] for r in problem["rejections"]} == {"unknown_sku", "price_mismatch"}


async def test_prices_finer_than_the_currency_minor_unit_are_refused(
    gateway: Gateway, webshop: Caller
) -> None:
    payload = v1_order("W-5", line(price="12.905"))

    response = await webshop.http.post("/partner/v1/orders", json=payload, headers=key())

    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"].startswith("#/lines/0")


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_another_partners_order_is_not_found_exactly_like_a_missing_one(
    gateway: Gateway, webshop: Caller, marketplace: Caller, version: str
) -> None:
    seed_products(gateway)
    payload = v1_order("W-6") if version == "v1" else v2_order("W-6")
    own = await webshop.http.post(f"/partner/{version}/orders", json=payload, headers=key())
    order_id = own.json()["order_id"]

    foreign = await marketplace.http.get(f"/partner/{version}/orders/{order_id}")
    missing = await marketplace.http.get(f"/partner/{version}/orders/ord_doesnotexist")

    assert foreign.status_code == missing.status_code == 404
    assert _without_ids(foreign.json(), order_id) == _without_ids(
        missing.json(), "ord_doesnotexist"
    )


def _without_ids(problem: dict[str, Any], order_id: str) -> dict[str, Any]:
    return {
        k: (v.replace(order_id, "<id>") if isinstance(v, str) else v)
        for k, v in problem.items()
        if k != "correlation_id"
    }


async def test_a_partner_without_the_write_scope_cannot_submit(
    gateway: Gateway, read_only: Caller
) -> None:
    response = await read_only.http.post("/partner/v1/orders", json=v1_order("W-7"), headers=key())

    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.json()["required_scopes"] == ["orders:write"]


async def test_v1_announces_its_deprecation_and_sunset_and_v2_does_not(
    gateway: Gateway, webshop: Caller
) -> None:
    v1 = await webshop.http.get("/partner/v1/orders/ord_x")
    v2 = await webshop.http.get("/partner/v2/orders/ord_x")

    deprecated_at = gateway.settings.partner_v1_deprecation
    assert deprecated_at is not None
    assert v1.headers["deprecation"] == f"@{int(deprecated_at.timestamp())}"
    assert v1.headers["sunset"] == "Wed, 30 Jun 2027 00:00:00 GMT"
    assert 'rel="deprecation"' in v1.headers["link"]
    assert 'rel="sunset"' in v1.headers["link"]
    assert "deprecation" not in v2.headers
    assert "sunset" not in v2.headers


async def test_the_migration_note_linked_from_v1_is_served(webshop: Caller) -> None:
    v1 = await webshop.http.get("/partner/v1/orders/ord_x")
    url = v1.headers["link"].split(">")[0].lstrip("<")

    note = await webshop.http.get(url)

    assert note.status_code == 200
    assert "amount_minor" in note.text


async def test_partner_responses_carry_the_rate_limit_fields(
    gateway: Gateway, webshop: Caller
) -> None:
    response = await webshop.http.get("/partner/v2/orders/ord_x")

    assert response.headers["ratelimit-policy"].startswith('"burst";q=')
    assert response.headers["ratelimit"].startswith('"burst";r=')


async def test_every_partner_post_needs_an_idempotency_key(
    gateway: Gateway, webshop: Caller
) -> None:
    missing = await webshop.http.post("/partner/v1/orders", json=v1_order("W-8"))
    malformed = await webshop.http.post(
        "/partner/v1/orders", json=v1_order("W-8"), headers={"Idempotency-Key": "a b"}
    )

    assert missing.status_code == 400
    assert missing.json()["type"] == "/problems/idempotency-key-missing"
    assert malformed.status_code == 400
    assert malformed.json()["type"] == "/problems/idempotency-key-invalid"


async def test_a_retry_with_the_same_key_replays_the_first_answer(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_products(gateway)
    headers = key()
    first = await webshop.http.post("/partner/v1/orders", json=v1_order("W-9"), headers=headers)
    again = await webshop.http.post("/partner/v1/orders", json=v1_order("W-9"), headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


async def test_the_same_key_with_another_payload_is_refused(
    gateway: Gateway, webshop: Caller
) -> None:
    seed_products(gateway, product())
    headers = key()
    await webshop.http.post("/partner/v1/orders", json=v1_order("W-10"), headers=headers)

    reused = await webshop.http.post("/partner/v1/orders", json=v1_order("W-11"), headers=headers)

    assert reused.status_code == 422
    assert reused.json()["type"] == "/problems/idempotency-key-reused"


async def test_a_rejection_is_replayed_too(gateway: Gateway, webshop: Caller) -> None:
    headers = key()
    payload = v1_order("W-12", line(sku="NO-SUCH"))
    first = await webshop.http.post("/partner/v1/orders", json=payload, headers=headers)
    again = await webshop.http.post("/partner/v1/orders", json=payload, headers=headers)

    assert first.status_code == again.status_code == 409
    assert again.json()["order_id"] == first.json()["order_id"]


async def test_keys_are_scoped_per_client(
    gateway: Gateway, webshop: Caller, marketplace: Caller
) -> None:
    seed_products(gateway)
    headers = key()
    ours = await webshop.http.post("/partner/v1/orders", json=v1_order("W-13"), headers=headers)
    theirs = await marketplace.http.post(
        "/partner/v1/orders", json=v1_order("W-13"), headers=headers
    )

    assert ours.status_code == theirs.status_code == 201
    assert ours.json()["order_id"] != theirs.json()["order_id"]


async def test_idempotency_records_are_purged_hourly_after_their_retention(
    gateway: Gateway, webshop: Caller, clock: ManualClock
) -> None:
    seed_products(gateway)
    headers = key()
    await webshop.http.post("/partner/v1/orders", json=v1_order("W-14"), headers=headers)
    await gateway.idempotency_purge.ensure_scheduled()

    clock.advance(timedelta(seconds=gateway.settings.idempotency_retention_seconds + 3600))
    ran = await gateway.scheduler.run_due()
    remaining = gateway.database.run_read(
        lambda conn: conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one()
    )
    next_round = gateway.database.run_read(
        lambda conn: conn.execute(
            select(timers.c.due_at).where(timers.c.kind == PURGE_TIMER)
        ).scalar_one()
    )

    assert ran == 1
    assert remaining == 0
    assert next_round == clock.now() + PURGE_EVERY


@pytest.mark.parametrize("amount", ["9" * 40, "99999999999999.99", "1e400", "-0.001"])
async def test_absurd_amounts_are_422_not_a_server_error(
    gateway: Gateway, webshop: Caller, amount: str
) -> None:
    payload = v1_order("W-15", {**line(), "unit_price": {"amount": amount, "currency": "EUR"}})

    response = await webshop.http.post("/partner/v1/orders", json=payload, headers=key())

    assert response.status_code == 422, response.text


async def test_an_order_total_beyond_any_ledger_is_422(gateway: Gateway, webshop: Caller) -> None:
    payload = v2_order("W-16", quantity=1_000_000, cents=99_999_999_999)

    response = await webshop.http.post("/partner/v2/orders", json=payload, headers=key())

    assert response.status_code == 422, response.text


async def test_control_characters_in_ids_are_refused_not_a_server_error(
    gateway: Gateway, webshop: Caller
) -> None:
    in_body = await webshop.http.post("/partner/v1/orders", json=v1_order("W\x0017"), headers=key())
    in_path = await webshop.http.get("/partner/v1/orders/ord%00x")

    assert in_body.status_code == 422
    assert in_path.status_code in (404, 422)


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_partner_lists_and_cancels_only_its_own_orders(
    gateway: Gateway, webshop: Caller, marketplace: Caller, version: str
) -> None:
    seed_products(gateway)
    payload = v1_order("W-20") if version == "v1" else v2_order("W-20")
    own = (
        await webshop.http.post(f"/partner/{version}/orders", json=payload, headers=key())
    ).json()
    await marketplace.http.post(f"/partner/{version}/orders", json=payload, headers=key())

    listed = (await webshop.http.get(f"/partner/{version}/orders")).json()
    foreign_cancel = await marketplace.http.post(
        f"/partner/{version}/orders/{own['order_id']}/cancel", headers=key()
    )
    cancelled = await webshop.http.post(
        f"/partner/{version}/orders/{own['order_id']}/cancel", headers=key()
    )

    assert [o["order_id"] for o in listed["items"]] == [own["order_id"]]
    assert foreign_cancel.status_code == 404
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
