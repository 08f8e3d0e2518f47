"""SLA monitors: a breach opens one routed exception and counts in /metrics; it is resolved once the
condition clears. Rules per workflow and channel come from GATEWAY_SLA_MONITORS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from contracts.channel import ChannelProfile
from contracts.exceptions import ExceptionRecord, ExceptionStatus
from gateway import Gateway, build_app, build_gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from process_api.exceptions import list_exceptions
from process_api.monitoring import (
    SlaCheck,
    SlaMonitor,
    SlaMonitors,
    SlaMonitorsConfigError,
    SlaWorkflow,
    load_sla_monitors,
)
from tests.conftest import (
    BASE_URL,
    INTERNAL_SCOPES,
    free_port,
    make_settings,
    register_and_authorize,
    start_gateway,
)
from tests.factories import order_payload, seed_products
from tests.process.conftest import system_api_settings
from tests.scrape import scrape

ROUTING = json.dumps(
    [
        {"workflow": "inventory_sync", "owner_team": "stock-team", "sla": "PT15M"},
        {"workflow": "order_capture", "owner_team": "order-desk"},
    ]
)


def sla_exceptions(gateway: Gateway, code: str) -> list[ExceptionRecord]:
    return [
        record
        for record in gateway.database.run_read(lambda conn: list_exceptions(conn, limit=500))
        if record.code == code
    ]


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    built = start_gateway(make_settings(database_url, exception_routing=ROUTING), clock)
    yield built
    await built.aclose()


@pytest.fixture
async def webshop(gateway: Gateway) -> None:
    """The webshop channel, to which counted availability is published."""
    await gateway.channels.seed(
        [ChannelProfile(channel="webshop", name="Webshop", currency="EUR")], actor="test"
    )


async def count(client: httpx.AsyncClient, clock: ManualClock, sku: str = "MUG-RED-350") -> None:
    """A stock count now: its availability is published to the webshop, unconfirmed."""
    counted = await client.post(
        "/process/v1/inventory/counts",
        json={"as_of": clock.now().isoformat(), "counts": [{"sku": sku, "on_hand": 7}]},
    )
    assert counted.status_code == 200, counted.text


@pytest.mark.usefixtures("webshop")
async def test_unconfirmed_availability_past_five_minutes_opens_one_exception_until_confirmed(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await count(client, clock)
    await gateway.sla_check.job.ensure_scheduled()

    clock.advance(timedelta(minutes=4))
    within = await gateway.sla_check.run_once()
    figures_within = await scrape(client)
    clock.advance(timedelta(minutes=2))
    # The recurring check runs on the scheduler like every other timer.
    assert await gateway.scheduler.run_due() == 1
    breached = sla_exceptions(gateway, "sla_inventory_sync_lag")
    again = await gateway.sla_check.run_once()
    figures_breached = await scrape(client)
    confirmed = await client.post(
        "/process/v1/inventory/publications/webshop/confirmations",
        json={"skus": ["MUG-RED-350"], "confirmed_at": clock.now().isoformat()},
    )
    cleared = await gateway.sla_check.run_once()
    figures_cleared = await scrape(client)

    assert (within.opened, within.resolved) == (0, 0)
    assert figures_within.value("gateway_inventory_sync_lag_seconds", channel="webshop") == 240
    assert figures_within.series("gateway_sla_breaches_total") == []

    [exception] = breached
    assert exception.workflow == "inventory_sync"
    assert exception.channel == "webshop"
    assert exception.subject == "channel/webshop/availability"
    assert exception.owner_team == "stock-team"  # routed by the configured rules
    assert exception.severity.value == "high"
    assert exception.status is ExceptionStatus.OPEN
    assert exception.object_ids["sla"] == "inventory_sync"
    assert "6 min 0 s ago" in exception.detail
    assert (again.opened, again.resolved) == (0, 0)
    assert len(sla_exceptions(gateway, "sla_inventory_sync_lag")) == 1

    labels = {"monitor": "inventory_sync", "channel": "webshop"}
    assert figures_breached.value("gateway_sla_breaches_total", **labels) == 1
    assert figures_breached.value("gateway_sla_breaches_open", **labels) == 1
    assert figures_breached.families["gateway_sla_breaches"] == "counter"
    assert (
        figures_breached.value(
            "gateway_exceptions_open", channel="webshop", severity="high", team="stock-team"
        )
        == 1
    )

    assert confirmed.status_code == 204
    assert (cleared.opened, cleared.resolved) == (0, 1)
    [closed] = sla_exceptions(gateway, "sla_inventory_sync_lag")
    assert closed.status is ExceptionStatus.RESOLVED
    assert figures_cleared.value("gateway_sla_breaches_total", **labels) == 1
    assert figures_cleared.get("gateway_sla_breaches_open", **labels) is None
    assert figures_cleared.value("gateway_inventory_sync_lag_seconds", channel="webshop") == 0


@pytest.mark.usefixtures("webshop")
async def test_a_breach_closed_by_a_person_is_not_raised_again_while_it_lasts(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await count(client, clock)
    clock.advance(timedelta(minutes=6))
    assert (await gateway.sla_check.run_once()).opened == 1
    [raised] = sla_exceptions(gateway, "sla_inventory_sync_lag")
    ignored = await client.post(
        f"/process/v1/exceptions/{raised.exception_id}/resolve",
        json={"action": "ignore", "note": "channel maintenance window"},
    )
    clock.advance(timedelta(minutes=3))
    later = await gateway.sla_check.run_once()

    assert ignored.status_code == 200, ignored.text
    assert (later.opened, later.resolved) == (0, 0)
    assert [e.status for e in sla_exceptions(gateway, "sla_inventory_sync_lag")] == [
        ExceptionStatus.IGNORED
    ]


@pytest.mark.usefixtures("webshop")
async def test_a_breach_the_gateway_resolved_is_raised_again_when_it_is_found_again(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The monitor switched off for a while (a gateway started without the rule) resolves the
    exception; switched on again, the breach that still lasts is raised again, as nobody
    closed it by hand."""
    await count(client, clock)
    clock.advance(timedelta(minutes=6))
    first = await gateway.sla_check.run_once()
    switched_off = SlaMonitors(
        [SlaMonitor(workflow=SlaWorkflow.INVENTORY_SYNC, channel="webshop", enabled=False)]
    )
    off = await SlaCheck(gateway.store, switched_off, timedelta(minutes=1)).run_once()
    clock.advance(timedelta(minutes=1))
    on_again = await gateway.sla_check.run_once()

    assert [(r.opened, r.resolved) for r in (first, off, on_again)] == [(1, 0), (0, 1), (1, 0)]
    assert sorted(e.status for e in sla_exceptions(gateway, "sla_inventory_sync_lag")) == [
        ExceptionStatus.OPEN,
        ExceptionStatus.RESOLVED,
    ]


# ---------------------------------------------------------------- acknowledgement, per channel


@pytest.fixture
async def erp_down(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose system API (over HTTP) does not answer, so orders wait for the ERP; the
    webshop must be acknowledged within an hour, other channels within their profile's deadline."""
    system_side = start_gateway(make_settings(database_url), clock)
    settings = make_settings(
        database_url,
        exception_routing=ROUTING,
        system_api_timeout_seconds=1.0,
        sla_monitors=json.dumps(
            [{"workflow": "order_acknowledgement", "channel": "webshop", "within": "PT1H"}]
        ),
        **system_api_settings(system_side, f"http://127.0.0.1:{free_port()}"),
    )
    built = start_gateway(settings, clock)
    yield built
    await built.aclose()
    await system_side.aclose()


async def test_an_order_not_acknowledged_within_its_channels_sla_opens_an_exception(
    erp_down: Gateway, clock: ManualClock
) -> None:
    gateway = erp_down
    seed_products(gateway)
    transport = httpx.ASGITransport(app=build_app(gateway, run_background=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        _, headers = await register_and_authorize(
            gateway, http, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
        )
        calm = await scrape(http)
        web = await http.post("/process/v1/orders", json=order_payload("ACK-W"), headers=headers)
        market = await http.post(
            "/process/v1/orders",
            json=order_payload("ACK-M", channel="marketplace"),
            headers=headers,
        )
        waiting = await scrape(http)
        clock.advance(timedelta(hours=1, seconds=1))
        first = await gateway.sla_check.run_once()
        after_an_hour = await scrape(http)
        clock.advance(timedelta(hours=3))
        second = await gateway.sla_check.run_once()
        after_four_hours = await scrape(http)
        await gateway.orders.cancel(web.json()["order_id"], actor="test")
        third = await gateway.sla_check.run_once()
        after_cancel = await scrape(http)

    assert (web.status_code, market.status_code) == (202, 202), web.text
    assert waiting.value("gateway_acknowledgements_pending", channel="webshop") == 1
    assert waiting.value("gateway_acknowledgements_overdue", channel="webshop") == 0
    # The ERP was tried over HTTP, and did not answer.
    unanswered = {"backend": "system_api", "outcome": "unavailable"}
    calls = "gateway_backend_call_duration_seconds_count"
    assert waiting.value(calls, **unanswered) > calm.value(calls, **unanswered)

    assert (first.opened, first.resolved) == (1, 0)
    assert after_an_hour.value("gateway_acknowledgements_overdue", channel="webshop") == 1
    assert after_an_hour.value("gateway_acknowledgements_overdue", channel="marketplace") == 0
    assert (second.opened, second.resolved) == (1, 0)  # the marketplace's 4 h have passed now
    assert after_four_hours.value("gateway_acknowledgements_overdue", channel="marketplace") == 1

    raised = {e.channel: e for e in sla_exceptions(gateway, "sla_acknowledgement_overdue")}
    assert set(raised) == {"webshop", "marketplace"}
    webshop = raised["webshop"]
    assert webshop.workflow == "order_capture"
    assert webshop.owner_team == "order-desk"
    assert webshop.subject == f"order/{web.json()['order_id']}"
    assert webshop.money_at_risk is not None and str(webshop.money_at_risk.amount) == "12.90"
    assert "allowed: 1 h 0 min" in webshop.detail
    for channel in ("webshop", "marketplace"):
        labels = {"monitor": "order_acknowledgement", "channel": channel}
        assert after_four_hours.value("gateway_sla_breaches_total", **labels) == 1
        assert after_four_hours.value("gateway_sla_breaches_open", **labels) == 1

    assert (third.opened, third.resolved) == (0, 1)
    resolved = {e.channel: e.status for e in sla_exceptions(gateway, "sla_acknowledgement_overdue")}
    assert resolved == {"webshop": ExceptionStatus.RESOLVED, "marketplace": ExceptionStatus.OPEN}
    assert after_cancel.value("gateway_acknowledgements_pending", channel="webshop") == 0
    assert (
        after_cancel.get(
            "gateway_sla_breaches_open", monitor="order_acknowledgement", channel="webshop"
        )
        is None
    )


async def test_a_pending_order_is_due_for_acknowledgement_from_the_channels_confirmation_on(
    erp_down: Gateway, clock: ManualClock
) -> None:
    gateway = erp_down
    seed_products(gateway)
    app = build_app(gateway, run_background=False)

    async def submit(payload: dict[str, object]) -> httpx.Response:
        # A fresh token each time: the clock moves past a token's lifetime in between.
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            _, headers = await register_and_authorize(
                gateway, http, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
            )
            return await http.post("/process/v1/orders", json=payload, headers=headers)

    held = await submit({**order_payload("PEND-SLA"), "pending": True})
    clock.advance(timedelta(hours=5))  # held by the channel, longer than the webshop's hour
    while_held = await gateway.sla_check.run_once()
    confirmed = await submit(order_payload("PEND-SLA"))
    clock.advance(timedelta(minutes=59))
    within = await gateway.sla_check.run_once()
    clock.advance(timedelta(minutes=2))
    past = await gateway.sla_check.run_once()

    assert (held.status_code, confirmed.status_code) == (202, 200), confirmed.text
    assert confirmed.json()["pending_expires_at"] is None
    assert (while_held.opened, within.opened, past.opened) == (0, 0, 1)
    [raised] = sla_exceptions(gateway, "sla_acknowledgement_overdue")
    assert "1 h 1 min after it became due" in raised.detail


# ---------------------------------------------------------------- the rules


def test_channel_rules_win_over_general_ones_and_defaults_fill_the_rest() -> None:
    monitors = SlaMonitors(
        [
            SlaMonitor(workflow=SlaWorkflow.INVENTORY_SYNC, within=timedelta(minutes=10)),
            SlaMonitor(
                workflow=SlaWorkflow.INVENTORY_SYNC, channel="amazon", within=timedelta(minutes=2)
            ),
            SlaMonitor(workflow=SlaWorkflow.PRICE_CONFIRMATION, channel="b2b", enabled=False),
        ]
    )
    deadline = timedelta(hours=6)

    assert monitors.within(SlaWorkflow.INVENTORY_SYNC, "amazon", deadline) == timedelta(minutes=2)
    assert monitors.within(SlaWorkflow.INVENTORY_SYNC, "webshop", deadline) == timedelta(minutes=10)
    assert monitors.within(SlaWorkflow.PRICE_CONFIRMATION, "b2b", deadline) is None
    assert monitors.within(SlaWorkflow.PRICE_CONFIRMATION, "webshop", deadline) == timedelta(
        hours=1
    )
    assert monitors.within(SlaWorkflow.SHIPMENT_CONFIRMATION, "b2b", deadline) == timedelta(hours=1)
    # Unset for acknowledgements: the channel profile's own deadline.
    assert monitors.within(SlaWorkflow.ORDER_ACKNOWLEDGEMENT, "b2b", deadline) == deadline


def test_rules_load_from_inline_json_or_a_file(tmp_path: Path) -> None:
    rules = '[{"workflow": "shipment_confirmation", "channel": "webshop", "within": "PT30M"}]'
    path = tmp_path / "sla.json"
    path.write_text(rules)

    for source in (rules, str(path)):
        loaded = load_sla_monitors(source)
        assert loaded.within(
            SlaWorkflow.SHIPMENT_CONFIRMATION, "webshop", timedelta(hours=4)
        ) == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('[{"workflow": "telepathy"}]', "0/workflow"),
        ('[{"workflow": "inventory_sync", "within": "soon"}]', "0/within"),
        ('[{"workflow": "inventory_sync", "within": "PT0S"}]', "0/within"),
        ('[{"workflow": "inventory_sync", "colour": "red"}]', "0/colour"),
        (
            '[{"workflow": "inventory_sync"}, {"workflow": "inventory_sync", "within": "PT1M"}]',
            "more than one rule for inventory_sync on every channel",
        ),
        ("{not json", "not valid JSON"),
        ("/no/such/sla-file.json", "cannot read the file"),
    ],
)
def test_invalid_rules_stop_the_gateway_with_a_message(config: str, message: str) -> None:
    with pytest.raises(SlaMonitorsConfigError, match=message):
        load_sla_monitors(config)


def test_the_gateway_refuses_to_start_with_invalid_rules(tmp_path: Path) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'g.db'}", sla_monitors='[{"workflow": "telepathy"}]'
    )
    with pytest.raises(SlaMonitorsConfigError, match="workflow"):
        build_gateway(settings)
