"""The console beside the gateway's other parts: /metrics counts its requests by route template,
SLA breaches reach its exception queue with their team, and its pages mask buyers' contact data."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from contracts.channel import ChannelProfile
from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from gateway_infra.tables import timers
from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions import open_exception
from process_api.order_to_cash.service import ACK_DEADLINE_TIMER
from tests.conftest import (
    INTERNAL_SCOPES,
    make_settings,
    register_and_authorize,
    start_gateway,
)
from tests.console.conftest import (
    CONSOLE_URL,
    form_token,
    gateway_with_erp_down,
    sign_in,
)
from tests.factories import order_payload, seed_products
from tests.process.test_sla_monitors import ROUTING
from tests.scrape import scrape

EMAIL = "erika.mustermann@example.com"
PHONE = "+49 221 1234567"


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    built = start_gateway(make_settings(database_url, exception_routing=ROUTING), clock)
    yield built
    await built.aclose()


async def test_console_requests_are_counted_under_the_ops_app_by_route_template(
    signed_in: httpx.AsyncClient,
) -> None:
    before = await scrape(signed_in)

    for order_id in ("ord_first_missing", "ord_second_missing"):
        assert (await signed_in.get(f"/ops/orders/{order_id}")).status_code == 404
    assert (await signed_in.get("/ops/exceptions", params={"team": "nobody"})).status_code == 200
    assert (await signed_in.get("/ops/static/console.css")).status_code == 200
    assert (await signed_in.get("/ops/no/such/page")).status_code == 404
    after = await scrape(signed_in)

    def moved(route: str, status: str) -> float:
        labels = {"app": "ops", "route": route, "method": "GET", "status": status}
        return after.value("gateway_http_requests_total", **labels) - before.value(
            "gateway_http_requests_total", **labels
        )

    assert moved("/ops/orders/{order_id}", "404") == 2
    assert moved("/ops/exceptions", "200") == 1
    assert moved("/ops/static/{path}", "200") == 1
    assert moved("(unmatched)", "404") == 1
    routes = {s["route"] for s in after.series("gateway_http_requests_total")}
    assert not any(
        word in route for route in routes for word in ("missing", "nobody", "console.css", "such")
    )


async def test_an_sla_breach_is_in_the_console_queue_with_its_team(
    gateway: Gateway, client: httpx.AsyncClient, signed_in: httpx.AsyncClient, clock: ManualClock
) -> None:
    await gateway.channels.seed(
        [ChannelProfile(channel="webshop", name="Webshop", currency="EUR")], actor="test"
    )
    counted = await client.post(
        "/process/v1/inventory/counts",
        json={"as_of": clock.now().isoformat(), "counts": [{"sku": "MUG-RED-350", "on_hand": 7}]},
    )
    assert counted.status_code == 200, counted.text
    clock.advance(timedelta(minutes=6))
    assert (await gateway.sla_check.run_once()).opened == 1

    queue = await signed_in.get("/ops/exceptions", params={"team": "stock-team"})
    other_team = await signed_in.get("/ops/exceptions", params={"team": "order-desk"})
    overview = await signed_in.get("/ops/")

    assert queue.status_code == 200
    [row] = [r for r in queue.text.split("<tr") if "sla_inventory_sync_lag" in r]
    assert "<td>stock-team</td>" in row
    assert "<td>webshop</td>" in row
    assert "sla_inventory_sync_lag" not in other_team.text
    assert 'class="sev sev-high">high</span> 1' in overview.text


async def test_the_pages_mask_buyers_contact_data_in_free_texts(
    gateway: Gateway, client: httpx.AsyncClient, signed_in: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    placed = await client.post(
        "/process/v1/orders",
        json={
            **order_payload("PD-1"),
            "customer": {"name": "Erika Mustermann", "email": EMAIL, "phone": PHONE},
        },
    )
    order_id = placed.json()["order_id"]
    reason = f"buyer wrote from {EMAIL}, call back on {PHONE}"
    cancelled = await client.post(f"/process/v1/orders/{order_id}/cancel", json={"reason": reason})
    assert cancelled.status_code == 200, cancelled.text
    journey = await signed_in.get(f"/ops/orders/{order_id}")

    def unit(uow: UnitOfWork) -> str:
        return open_exception(
            uow,
            workflow="order_capture",
            code="order_unmappable",
            subject="amazon/111-0000000-0000000",
            channel="webshop",
            detail=f"the order could not be taken in: BuyerEmail {EMAIL!r} is not valid",
        )

    exception_id = await gateway.store.write(unit)
    form = await signed_in.get(f"/ops/exceptions/{exception_id}")
    acknowledged = await signed_in.post(
        f"/ops/exceptions/{exception_id}/acknowledge",
        data={"csrf_token": form_token(form.text), "note": f"buyer rang from {PHONE}"},
    )
    page = await signed_in.get(f"/ops/exceptions/{exception_id}")

    assert journey.status_code == 200
    assert "buyer wrote from [redacted], call back on [redacted]" in journey.text
    for text in (EMAIL, PHONE, "Mustermann"):
        assert text not in journey.text
    assert acknowledged.status_code == 303
    assert "BuyerEmail &#39;[redacted]&#39; is not valid" in page.text
    assert "buyer rang from [redacted]" in page.text
    assert EMAIL not in page.text and PHONE not in page.text


async def test_a_held_order_is_due_for_acknowledgement_on_the_overview_from_its_confirmation(
    database_url: str, clock: ManualClock
) -> None:
    # The ERP is a system API nobody answers on: the order stays reserved, waiting.
    down = gateway_with_erp_down(database_url, clock)  # acknowledgement within 15 minutes
    try:
        transport = httpx.ASGITransport(app=build_app(down, run_background=False))

        async def submit(payload: dict[str, object]) -> httpx.Response:
            async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as c:
                _, headers = await register_and_authorize(
                    down, c, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
                )
                return await c.post("/process/v1/orders", json=payload, headers=headers)

        held = await submit({**order_payload("HELD-1"), "pending": True})
        clock.advance(timedelta(hours=5))
        confirmed = await submit(order_payload("HELD-1"))
        clock.advance(timedelta(minutes=12))  # past the warning at three quarters of 15 min
        await down.scheduler.run_due()
        warning_timers = down.database.run_read(
            lambda conn: conn.execute(
                select(timers.c.key).where(timers.c.kind == ACK_DEADLINE_TIMER)
            ).all()
        )
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as c:
            assert (await sign_in(c)).status_code == 303
            within = (await c.get("/ops/")).text
            clock.advance(timedelta(minutes=4))
            past = (await c.get("/ops/")).text
    finally:
        await down.aclose()

    def figures(html: str) -> list[str]:
        return re.findall(r'<span class="figure[^"]*">([^<]+)</span>', html)

    assert (held.status_code, confirmed.status_code) == (202, 200), confirmed.text
    assert warning_timers == []  # fired: the deadline is counted from the order itself
    # awaiting, overdue: 15 minutes from the channel's confirmation, not from the intake
    assert figures(within)[:2] == ["1", "0"]
    assert figures(past)[:2] == ["1", "1"]
