"""The shipment confirmation SLA: a package the warehouse shipped and the WMS has not confirmed
within an hour opens one exception, counted in /metrics, resolved once the WMS confirms it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from contracts.exceptions import ExceptionRecord, ExceptionStatus
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.exceptions import list_exceptions
from tests.conftest import make_settings, start_gateway
from tests.process.fulfilment.support import Outage, package, released_order, shipment, two_lines
from tests.scrape import scrape

CODE = "sla_shipment_confirmation_overdue"


def raised(gateway: Gateway) -> list[ExceptionRecord]:
    every = gateway.database.run_read(lambda conn: list_exceptions(conn, limit=500))
    return [e for e in every if e.code == CODE]


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    built = start_gateway(make_settings(database_url), clock)
    yield built
    await built.aclose()


async def test_a_package_unconfirmed_an_hour_after_shipping_opens_one_exception_until_confirmed(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock, wms_outage: Outage
) -> None:
    order_id = await released_order(client, "SLA-SHIP-1", *two_lines())
    wms_outage.down = True
    body = {**shipment(order_id, package("PKG-1", ("1", "MUG-RED-350", 3)))}
    body["shipped_at"] = clock.now().isoformat()
    deferred = await client.post(f"/process/v1/orders/{order_id}/shipments", json=body)

    clock.advance(timedelta(minutes=59))
    await gateway.sla_check.run_once()
    early = raised(gateway)
    clock.advance(timedelta(minutes=2))
    await gateway.sla_check.run_once()
    await gateway.sla_check.run_once()
    late = raised(gateway)
    breached = await scrape(client)

    wms_outage.down = False
    await gateway.scheduler.run_due()  # the confirmation timer gets through now
    await gateway.sla_check.run_once()
    cleared = raised(gateway)
    after = await scrape(client)

    assert deferred.status_code == 202, deferred.text
    assert early == []
    [exception] = late  # once, however often the check runs
    assert exception.workflow == "shipment_confirmation"
    assert exception.subject == f"order/{order_id}"
    assert exception.channel == "webshop"
    assert "shipped 1 h 1 min ago" in exception.detail
    labels = {"monitor": "shipment_confirmation", "channel": "webshop"}
    assert breached.value("gateway_sla_breaches_open", **labels) == 1
    assert breached.value("gateway_sla_breaches_total", **labels) == 1
    [closed] = cleared
    assert closed.status is ExceptionStatus.RESOLVED
    assert after.get("gateway_sla_breaches_open", **labels) is None
    assert after.value("gateway_sla_breaches_total", **labels) == 1
