"""The console's pages and the actions operators take there: each goes through the process
layer's services, carries the session's CSRF token, and lands in the audit log."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from contracts.exceptions import Severity
from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from gateway_infra.delivery import DeliveryState
from gateway_infra.settings import Settings
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import UnitOfWork
from process_api.audit import AuditLog
from process_api.console import app as console_app
from process_api.exceptions import open_exception
from tests.conftest import (
    INTERNAL_SCOPES,
    register_and_authorize,
)
from tests.console.conftest import (
    CONSOLE_URL,
    add_operator,
    form_token,
    gateway_with_erp_down,
    sign_in,
)
from tests.delivery.conftest import (
    Receiver,
    all_deliveries,
    delivery_settings,
    emit,
    pending,
    pump,
    pump_until_settled,
    subscribe,
)
from tests.delivery.conftest import receiver as receiver  # the fixture
from tests.factories import order_payload, seed_products


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime.now(UTC))


@pytest.fixture
def settings(database_url: str) -> Settings:
    return delivery_settings(database_url)


async def raise_exception(
    gateway: Gateway,
    *,
    code: str,
    channel: str,
    severity: Severity = Severity.MEDIUM,
    workflow: str = "order_capture",
    team: str | None = None,
) -> str:
    def unit(uow: UnitOfWork) -> str:
        return open_exception(
            uow,
            workflow=workflow,
            code=code,
            subject=f"test/{code}",
            channel=channel,
            severity=severity,
            detail=f"{code} happened",
            owner_team=team,
        )

    return await gateway.store.write(unit)


def listed_ids(html: str) -> set[str]:
    return set(re.findall(r'/ops/exceptions/(exc_[A-Za-z0-9_-]+)"', html))


async def test_the_exception_queue_filters_by_channel_severity_team_status_and_workflow(
    gateway: Gateway, signed_in: httpx.AsyncClient
) -> None:
    web = await raise_exception(gateway, code="a", channel="webshop", severity=Severity.HIGH)
    market = await raise_exception(gateway, code="b", channel="marketplace", team="mp-team")
    stock = await raise_exception(
        gateway, code="c", channel="webshop", workflow="inventory_sync", team="warehouse"
    )

    every = await signed_in.get("/ops/exceptions")
    by_channel = await signed_in.get("/ops/exceptions", params={"channel": "webshop"})
    by_severity = await signed_in.get("/ops/exceptions", params={"severity": "high"})
    by_team = await signed_in.get("/ops/exceptions", params={"team": "mp-team"})
    by_workflow = await signed_in.get("/ops/exceptions", params={"workflow": "inventory_sync"})
    by_status = await signed_in.get("/ops/exceptions", params={"status": "resolved"})
    combined = await signed_in.get(
        "/ops/exceptions", params={"channel": "webshop", "severity": "medium", "status": "open"}
    )
    bad = await signed_in.get("/ops/exceptions", params={"severity": "apocalyptic"})

    assert listed_ids(every.text) == {web, market, stock}
    assert listed_ids(by_channel.text) == {web, stock}
    assert listed_ids(by_severity.text) == {web}
    assert listed_ids(by_team.text) == {market}
    assert listed_ids(by_workflow.text) == {stock}
    assert listed_ids(by_status.text) == set()
    assert listed_ids(combined.text) == {stock}
    assert bad.status_code == 422
    assert "not one of the choices" in bad.text


async def test_acknowledging_and_resolving_go_through_the_queue_and_are_audited(
    gateway: Gateway, signed_in: httpx.AsyncClient
) -> None:
    exception_id = await raise_exception(gateway, code="a", channel="webshop")
    page = await signed_in.get(f"/ops/exceptions/{exception_id}")
    token = form_token(page.text)

    acknowledged = await signed_in.post(
        f"/ops/exceptions/{exception_id}/acknowledge",
        data={"csrf_token": token, "note": "looking"},
    )
    no_note = await signed_in.post(
        f"/ops/exceptions/{exception_id}/resolve", data={"csrf_token": token, "action": "ignore"}
    )
    fixed = await signed_in.post(
        f"/ops/exceptions/{exception_id}/resolve",
        data={"csrf_token": token, "action": "fixed_by_hand", "note": "re-keyed in the ERP"},
    )
    again = await signed_in.post(
        f"/ops/exceptions/{exception_id}/acknowledge", data={"csrf_token": token}
    )

    assert acknowledged.status_code == 303
    assert acknowledged.headers["location"].endswith("?notice=acknowledged")
    assert no_note.status_code == 422
    assert fixed.status_code == 303
    assert again.status_code == 409
    record = await gateway.exceptions.require(exception_id)
    assert record.status.value == "resolved"
    assert [(h.actor, h.action) for h in record.history][1:] == [
        ("operator:alice", "acknowledged"),
        ("operator:alice", "fixed_by_hand"),
    ]
    entries = await AuditLog(gateway.store).entries(subject=f"exception/{exception_id}")
    assert [(e.actor, e.action) for e in entries] == [
        ("operator:alice", "exception.resolve.fixed_by_hand"),
        ("operator:alice", "exception.acknowledged"),
    ]
    assert entries[0].before == {**entries[1].after, "status": "acknowledged"}  # type: ignore[dict-item]
    assert entries[0].after["status"] == "resolved"  # type: ignore[index,call-overload]
    shown = await signed_in.get("/ops/audit", params={"subject": f"exception/{exception_id}"})
    assert "exception.resolve.fixed_by_hand" in shown.text


async def test_an_action_whose_audit_entry_cannot_be_written_is_not_carried_out(
    gateway: Gateway, signed_in: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is written in the transaction that records the action on the exception: an
    action is never kept without its audit entry (the operator sees an error and may retry)."""
    exception_id = await raise_exception(gateway, code="a", channel="webshop")
    page = await signed_in.get(f"/ops/exceptions/{exception_id}")

    def unavailable(uow: UnitOfWork, **entry: object) -> None:
        raise OSError("audit log unavailable")

    monkeypatch.setattr(console_app, "audit_entry", unavailable)
    refused = await signed_in.post(
        f"/ops/exceptions/{exception_id}/acknowledge",
        data={"csrf_token": form_token(page.text)},
    )

    assert refused.status_code == 500, refused.text
    record = await gateway.exceptions.require(exception_id)
    assert record.status.value == "open"
    assert [h.action for h in record.history] == ["raised"]
    assert await AuditLog(gateway.store).entries(subject=f"exception/{exception_id}") == []

    monkeypatch.undo()
    retried = await signed_in.post(
        f"/ops/exceptions/{exception_id}/acknowledge",
        data={"csrf_token": form_token(page.text)},
    )
    assert retried.status_code == 303
    entries = await AuditLog(gateway.store).entries(subject=f"exception/{exception_id}")
    assert [(e.actor, e.action) for e in entries] == [("operator:alice", "exception.acknowledged")]


@pytest.mark.parametrize("token", ["", "forged-token"])
async def test_an_action_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    gateway: Gateway, signed_in: httpx.AsyncClient, token: str
) -> None:
    exception_id = await raise_exception(gateway, code="a", channel="webshop")

    response = await signed_in.post(
        f"/ops/exceptions/{exception_id}/resolve",
        data={"csrf_token": token, "action": "ignore", "note": "forged"},
    )
    sign_out = await signed_in.post("/ops/sign-out", data={"csrf_token": token})

    assert response.status_code == 403
    assert sign_out.status_code == 403
    assert (await gateway.exceptions.require(exception_id)).status.value == "open"
    assert await AuditLog(gateway.store).entries(subject=f"exception/{exception_id}") == []
    assert (await signed_in.get("/ops/")).status_code == 200  # still signed in


async def test_an_action_without_a_session_goes_to_sign_in_and_changes_nothing(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    exception_id = await raise_exception(gateway, code="a", channel="webshop")

    response = await browser.post(
        f"/ops/exceptions/{exception_id}/acknowledge", data={"csrf_token": "x"}
    )

    assert response.status_code == 303
    assert response.headers["location"].startswith("/ops/sign-in")
    assert (await gateway.exceptions.require(exception_id)).status.value == "open"


async def test_the_overview_and_journey_show_an_orders_state_history_and_events(
    gateway: Gateway, client: httpx.AsyncClient, signed_in: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    placed = await client.post("/process/v1/orders", json=order_payload("WEB-77"))
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    status = placed.json()["status"]

    overview = await signed_in.get("/ops/")
    journey = await signed_in.get(f"/ops/orders/{order_id}")
    missing = await signed_in.get("/ops/orders/ord_missing")

    assert overview.status_code == 200
    assert 'id="channel-webshop"' in overview.text
    assert f"status={status}" in overview.text
    assert journey.status_code == 200
    assert "WEB-77" in journey.text
    recorded = await gateway.store.read(
        lambda conn: list(
            conn.execute(
                select(outbox.c.type).where(outbox.c.subject == f"order/{order_id}")
            ).scalars()
        )
    )
    assert recorded
    assert all(f"<td>{kind}</td>" in journey.text for kind in recorded)
    assert f"<td>{status}</td>" in journey.text  # the history's last state
    assert missing.status_code == 404


async def test_the_journey_page_shows_the_journey_service_s_steps_and_correlation_ids(
    gateway: Gateway, client: httpx.AsyncClient, signed_in: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    placed = await client.post(
        "/process/v1/orders", json=order_payload("WEB-78"), headers={"X-Correlation-ID": "placed-1"}
    )
    order_id = placed.json()["order_id"]
    cancelled = await client.post(
        f"/process/v1/orders/{order_id}/cancel",
        json={"reason": "changed their mind"},
        headers={"X-Correlation-ID": "cancelled-1"},
    )
    assert cancelled.status_code == 200, cancelled.text

    api = (await client.get(f"/process/v1/orders/{order_id}/journey")).json()
    page = (await signed_in.get(f"/ops/orders/{order_id}")).text

    assert '<code id="origin-correlation-id">placed-1</code>' in page
    listed = re.search(r'<ol class="plain" id="correlation-ids">(.*?)</ol>', page, re.S)
    assert listed is not None
    assert re.findall(r"<code>([^<]+)</code>", listed.group(1)) == ["placed-1", "cancelled-1"]
    assert api["correlation_ids"] == ["placed-1", "cancelled-1"]
    shown = re.findall(r'<tr class="(status-change|event)">(.*?)</tr>', page, re.S)
    assert len(shown) == len(api["steps"])
    for (kind, row), step in zip(shown, api["steps"], strict=True):
        assert kind == step["kind"].replace("_", "-")
        assert f"<td>{step['to_status'] or step['type']}</td>" in row
        assert f"<code>{step['correlation_id']}</code>" in row


async def test_a_dead_letter_replayed_from_the_console_reaches_the_receiver(
    gateway: Gateway,
    clock: ManualClock,
    receiver: Receiver,
    signed_in: httpx.AsyncClient,
) -> None:
    await subscribe(gateway, receiver)
    receiver.failing = True
    event = await emit(gateway, "order.shipped", "order/ord_9")
    for _ in range(40):
        await pump(gateway)
        if not await pending(gateway):
            break
        clock.advance(timedelta(seconds=4))
    [dead] = await all_deliveries(gateway)
    assert dead.state is DeliveryState.DEAD
    page = await signed_in.get("/ops/dead-letters", params={"channel": "webshop"})
    assert f"/ops/dead-letters/{dead.delivery_id}/replay" in page.text

    receiver.failing = False
    replayed = await signed_in.post(
        f"/ops/dead-letters/{dead.delivery_id}/replay", data={"csrf_token": form_token(page.text)}
    )
    await pump_until_settled(gateway, clock)

    assert replayed.status_code == 303
    assert [e["id"] for e in receiver.accepted] == [str(event.id)]
    [entry] = await AuditLog(gateway.store).entries(action="delivery.replayed")
    assert entry.actor == "operator:alice"
    assert entry.before["state"] == "dead"  # type: ignore[index,call-overload]
    assert entry.after["state"] == "pending"  # type: ignore[index,call-overload]
    twice = await signed_in.post(
        f"/ops/dead-letters/{dead.delivery_id}/replay", data={"csrf_token": form_token(page.text)}
    )
    assert twice.status_code == 409


async def test_signing_in_again_after_a_refusal_works(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    add_operator(gateway, "bob", "Bob")
    assert (await sign_in(browser, "bob", "wrong password!")).status_code == 401
    assert (await sign_in(browser, "bob")).status_code == 303


async def test_the_overview_shows_acknowledgement_deadlines_and_the_inventory_sync_lag(
    database_url: str, clock: ManualClock
) -> None:
    # The ERP is a system API nobody answers on: the order is reserved and waits for it.
    down = gateway_with_erp_down(database_url, clock)  # acknowledgement within 15 minutes
    try:
        transport = httpx.ASGITransport(app=build_app(down, run_background=False))
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as c:
            _, headers = await register_and_authorize(
                down, c, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
            )
            placed = await c.post(
                "/process/v1/orders", json=order_payload("WAIT-1"), headers=headers
            )
            assert placed.status_code == 202, placed.text
            assert (await sign_in(c)).status_code == 303

            clock.advance(timedelta(minutes=5))
            soon = (await c.get("/ops/")).text
            clock.advance(timedelta(minutes=15))
            late = (await c.get("/ops/")).text
    finally:
        await down.aclose()

    def figures(html: str) -> list[str]:
        return re.findall(r'<span class="figure[^"]*">([^<]+)</span>', html)

    # awaiting, overdue, unconfirmed SKUs, lag, unresolved exceptions
    assert figures(soon)[:4] == ["1", "0", "1", "5 min"]
    assert "WAIT-1" in soon
    assert figures(late)[:4] == ["1", "1", "1", "20 min"]
    assert 'class="overdue"' in late
