"""Buyers' personal data leaves closed orders (settled, cancelled, rejected) once the retention
period after their last change has passed: from the order and from the events about it; open
orders and recently closed ones keep it, and purging again changes nothing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, insert, select, update

from contracts import OrderSubmission
from gateway import Gateway, parser
from gateway_infra.clock import ManualClock
from gateway_infra.outbox import ENVELOPE_COLUMNS, envelope_of
from gateway_infra.settings import Settings
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import UnitOfWork
from process_api import personal_data
from process_api.personal_data import PURGE_KIND
from process_api.tables import orders as orders_table
from process_api.tables import returns as returns_table
from tests.conftest import make_settings, migrated_sqlite, start_gateway
from tests.factories import line, order_payload, seed_products

RETENTION = timedelta(days=90)
EMAIL = "erika@example.org"


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """The purge concerns the process layer's own tables: the system API stays in process."""
    built = start_gateway(make_settings(database_url), clock)
    yield built
    await built.aclose()


def buyer_order(channel_order_id: str, *lines: dict[str, Any]) -> dict[str, Any]:
    address = {
        "name": "Erika Mustermann",
        "line1": "Heidestrasse 17",
        "city": "Köln",
        "postal_code": "50667",
        "country": "DE",
    }
    return {
        **order_payload(channel_order_id, *lines),
        "customer": {"name": "Erika Mustermann", "email": EMAIL, "phone": "+49 221 1234567"},
        "shipping_address": address,
    }


async def submit(client: httpx.AsyncClient, channel_order_id: str, *lines: dict[str, Any]) -> str:
    response = await client.post("/process/v1/orders", json=buyer_order(channel_order_id, *lines))
    assert response.status_code in (201, 409), response.text
    order_id: str = response.json()["order_id"]  # a rejected order's problem names it too
    return order_id


async def copy_into_an_event(gateway: Gateway, order_id: str) -> None:
    """An event about the order that holds a copy of the buyer (as a channel's payload may)."""

    def publish(uow: UnitOfWork) -> None:
        uow.emit(
            "order.note_added",
            source="process_api",
            subject=f"order/{order_id}",
            data={"order_id": order_id, "customer": {"email": EMAIL}, "note": "gift wrap"},
        )

    await gateway.store.write(publish)


async def read(gateway: Gateway, order_id: str) -> dict[str, Any]:
    """The order as the process API shows it (tokens do not outlive the months moved here)."""
    order = await gateway.orders.get(order_id)
    assert order is not None
    return order.model_dump(mode="json")


async def events_of(gateway: Gateway, order_id: str) -> list[dict[str, Any]]:
    rows = await gateway.store.read(
        lambda conn: list(
            conn.execute(select(*ENVELOPE_COLUMNS).where(outbox.c.order_id == order_id))
        )
    )
    return [envelope_of(row) or {} for row in rows]


async def orders_in_place(gateway: Gateway, client: httpx.AsyncClient) -> dict[str, str]:
    seed_products(gateway)
    cancelled = await submit(client, "PD-CANCELLED")
    await gateway.orders.cancel(
        cancelled, actor="test", reason="buyer called from +49 221 7654321: changed their mind"
    )
    rejected = await submit(client, "PD-REJECTED", line("1", "NO-SUCH-SKU"))
    open_order = await submit(client, "PD-OPEN")
    await copy_into_an_event(gateway, cancelled)
    return {"cancelled": cancelled, "rejected": rejected, "open": open_order}


async def test_closed_orders_lose_personal_data_after_the_retention_period(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    orders = await orders_in_place(gateway, client)
    purge = gateway.personal_data
    assert purge is not None and purge.retention == RETENTION

    clock.advance(RETENTION - timedelta(hours=1))
    too_early = await purge.run()
    clock.advance(timedelta(hours=2))
    planned = await purge.run(dry_run=True)
    untouched = await read(gateway, orders["cancelled"])
    done = await purge.run()
    again = await purge.run()

    assert (too_early.orders, too_early.events, too_early.texts) == (0, 0, 0)
    # Events: the copy of the buyer, and the phone number in the cancellation event's reason.
    assert (planned.orders, planned.events, planned.texts) == (2, 2, 1)
    assert untouched["customer"]["email"] == EMAIL
    assert (done.orders, done.events, done.texts) == (2, 2, 1)
    assert (again.orders, again.events, again.texts) == (0, 0, 0)
    for closed in (orders["cancelled"], orders["rejected"]):
        order = await read(gateway, closed)
        assert order["customer"] is None and order["shipping_address"] is None
        assert order["lines"] and order["history"]  # everything else stays
    reasons = [h["reason"] for h in (await read(gateway, orders["cancelled"]))["history"]]
    assert "buyer called from [redacted]: changed their mind" in reasons
    kept = await read(gateway, orders["open"])
    assert kept["customer"]["email"] == EMAIL
    note = next(
        e for e in await events_of(gateway, orders["cancelled"]) if e["type"] == "order.note_added"
    )
    assert note["data"] == {"order_id": orders["cancelled"], "customer": None, "note": "gift wrap"}
    cancellation = next(
        e for e in await events_of(gateway, orders["cancelled"]) if e["type"] == "order.cancelled"
    )
    assert cancellation["data"]["reason"] == "buyer called from [redacted]: changed their mind"
    assert EMAIL not in json.dumps(await events_of(gateway, orders["cancelled"]))


async def test_the_scheduler_purges_on_its_own(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    orders = await orders_in_place(gateway, client)
    assert gateway.personal_data_purge is not None
    assert PURGE_KIND in gateway.scheduler.kinds
    await gateway.personal_data_purge.ensure_scheduled()

    clock.advance(RETENTION + timedelta(days=1))
    await gateway.scheduler.run_due()

    cancelled = await read(gateway, orders["cancelled"])
    assert cancelled["customer"] is None


def a_return_opened(order_id: str, now: datetime) -> Callable[[Connection], None]:
    """A return of the order recorded now (refused: the order was cancelled)."""

    def change(conn: Connection) -> None:
        channel = conn.execute(
            select(orders_table.c.channel).where(orders_table.c.order_id == order_id)
        ).scalar_one()
        conn.execute(
            insert(returns_table).values(
                return_id="RET-LATE",
                order_id=order_id,
                channel=channel,
                channel_return_id="LATE-1",
                status="refused",
                currency="EUR",
                value=Decimal("0"),
                refusals=[{"line_id": "1", "code": "order_cancelled", "detail": "cancelled"}],
                created_at=now,
                updated_at=now,
            )
        )

    return change


def the_order_changed(order_id: str, now: datetime) -> Callable[[Connection], None]:
    def change(conn: Connection) -> None:
        conn.execute(
            update(orders_table).where(orders_table.c.order_id == order_id).values(updated_at=now)
        )

    return change


@pytest.mark.parametrize("change", [a_return_opened, the_order_changed])
async def test_an_order_that_changes_after_being_selected_keeps_all_its_personal_data(
    gateway: Gateway,
    client: httpx.AsyncClient,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[str, datetime], Callable[[Connection], None]],
) -> None:
    orders = await orders_in_place(gateway, client)
    clock.advance(RETENTION + timedelta(days=1))
    events_before = await events_of(gateway, orders["cancelled"])
    history_before = (await read(gateway, orders["cancelled"]))["history"]
    interfere = change(orders["cancelled"], clock.now())
    select_due = personal_data._due_orders
    interfered: list[str] = []

    def selected_then_changed(conn: Connection, *args: Any, **kwargs: Any) -> list[str]:
        """The purge's selection, then the change committed before the purge goes on."""
        found = select_due(conn, *args, **kwargs)
        if not interfered and orders["cancelled"] in found:
            interfered.append(orders["cancelled"])
            if conn.dialect.name == "sqlite":  # one writer at a time: the change joins the purge
                interfere(conn)
            else:  # another transaction, committed while the purge holds no lock yet
                with gateway.store.database.engine.begin() as other:
                    interfere(other)
        return found

    monkeypatch.setattr(personal_data, "_due_orders", selected_then_changed)
    assert gateway.personal_data is not None
    done = await gateway.personal_data.run()

    assert interfered == [orders["cancelled"]]
    assert done.orders == 1  # the rejected order, which did not change
    kept = await read(gateway, orders["cancelled"])
    assert kept["customer"]["email"] == EMAIL
    assert kept["shipping_address"] is not None
    assert kept["history"] == history_before
    assert await events_of(gateway, orders["cancelled"]) == events_before
    rejected = await read(gateway, orders["rejected"])
    assert rejected["customer"] is None


def run_command(*args: str, settings: Settings, capsys: pytest.CaptureFixture[str]) -> str:
    """The command as `retail-gateway` parses and runs it; what it printed."""
    parsed = parser().parse_args(list(args))
    assert parsed.handler(parsed, settings) == 0
    return capsys.readouterr().out


async def test_the_purge_command_reports_counts_and_can_only_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_sqlite(tmp_path / "purge.db")
    settings = make_settings(url)
    # An order placed, and cancelled, long ago by the command's real clock.
    built = start_gateway(settings, ManualClock())
    try:
        seed_products(built)
        submitted = await built.orders.submit(
            OrderSubmission.model_validate(buyer_order("PD-CLI")), actor="test"
        )
        await built.orders.cancel(submitted.order.order_id, actor="test", reason="test")
    finally:
        await built.aclose()

    counted = run_command(
        "purge-personal-data", "--dry-run", "--json", settings=settings, capsys=capsys
    )
    purged = run_command("purge-personal-data", "--json", settings=settings, capsys=capsys)
    again = run_command("purge-personal-data", settings=settings, capsys=capsys)

    assert json.loads(counted) | {"cutoff": None} == {
        "dry_run": True,
        "cutoff": None,
        "orders": 1,
        "events": 0,
        "texts": 0,
    }
    assert json.loads(purged)["orders"] == 1
    assert again.startswith("purged personal data of 0 orders closed before")
