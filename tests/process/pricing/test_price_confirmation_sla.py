"""The price confirmation SLA: prices sent to a channel and unconfirmed past the channel's rule
open one exception, counted in /metrics; the channel's confirmation resolves it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from contracts.exceptions import ExceptionRecord, ExceptionStatus
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.exceptions import list_exceptions
from tests.conftest import make_settings, start_gateway
from tests.process.pricing.support import (
    MUG,
    TEE,
    entry,
    published_book,
    seed_channels_and_products,
)
from tests.scrape import scrape

CODE = "sla_price_confirmation_overdue"


def raised(gateway: Gateway) -> list[ExceptionRecord]:
    every = gateway.database.run_read(lambda conn: list_exceptions(conn, limit=500))
    return [e for e in every if e.code == CODE]


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    rules = [{"workflow": "price_confirmation", "channel": "webshop", "within": "PT10M"}]
    built = start_gateway(make_settings(database_url, sla_monitors=json.dumps(rules)), clock)
    yield built
    await built.aclose()


async def test_prices_unconfirmed_past_the_channels_rule_open_one_exception_until_confirmed(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await seed_channels_and_products(gateway)
    await published_book(client, entry(MUG), entry(TEE))
    sent = await scrape(client)

    clock.advance(timedelta(minutes=9))
    await gateway.sla_check.run_once()
    early = raised(gateway)
    clock.advance(timedelta(minutes=2))
    await gateway.sla_check.run_once()
    await gateway.sla_check.run_once()
    late = raised(gateway)
    breached = await scrape(client)
    confirmed = await gateway.pricing.confirm_publication("webshop", [MUG, TEE], clock.now())
    await gateway.sla_check.run_once()
    cleared = raised(gateway)
    after = await scrape(client)

    awaiting = "gateway_price_publications_awaiting_confirmation"
    assert sent.value(awaiting, channel="webshop") == 2
    assert early == []
    [exception] = late
    assert (exception.workflow, exception.subject) == ("pricing", "channel/webshop/prices")
    assert exception.severity.value == "medium"
    assert "allowed: 10 min 0 s" in exception.detail
    labels = {"monitor": "price_confirmation", "channel": "webshop"}
    assert breached.value("gateway_sla_breaches_open", **labels) == 1
    assert confirmed == 2
    [closed] = cleared
    assert closed.status is ExceptionStatus.RESOLVED
    assert after.get(awaiting, channel="webshop") is None
    assert after.value("gateway_sla_breaches_total", **labels) == 1
