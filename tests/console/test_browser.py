"""The ops console in real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright's
client; no browser is ever downloaded) against a real `retail-gateway serve` on loopback.

The scenario is seeded through the gateway's own services before the server starts: demo
channels and products, orders through the process API, a warehouse count that leaves one order
short (a high-severity stock exception), two other exceptions, and a webshop webhook whose
receiver fails, so the served gateway's sender dead-letters the order events."""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import Connection, func, select

from contracts.exceptions import Severity
from gateway import Gateway, build_app, build_gateway, operators_of
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import SystemClock
from gateway_infra.database import Database
from gateway_infra.delivery.tables import deliveries
from gateway_infra.settings import Settings
from partner_api.events import PARTNER_EVENT_TYPES
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from process_api.exceptions import open_exception
from tests.conftest import (
    BASE_URL,
    INTERNAL_SCOPES,
    TEST_ENVIRONMENT,
    GatewayProcess,
    migrated_sqlite,
    register_and_authorize,
    skip_or_fail,
)
from tests.console.conftest import PASSWORD
from tests.delivery.conftest import Receiver
from tests.delivery.conftest import receiver as receiver  # the fixture
from tests.factories import line, order_payload, seed_products

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
REPORTS = Path(__file__).resolve().parents[2] / "reports"
T = TypeVar("T")


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Headless Chromium from the system, through Playwright's driver."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        skip_or_fail(
            f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium), "
            "as .ci/run does, or point CHROMIUM at one"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        try:
            yield browser
        finally:
            browser.close()


async def seed(gateway: Gateway, receiver: Receiver) -> dict[str, Any]:
    """The scenario, written through the services and the process API."""
    gateway.channels.seed_sync(DEMO_CHANNEL_PROFILES, actor="seed")
    seed_products(gateway, on_hand=10)
    made = await gateway.webhooks.subscriptions.create(
        channel="webshop", url=f"{receiver.url}/hook", event_types=PARTNER_EVENT_TYPES
    )
    receiver.secrets.append(made.secret)
    transport = httpx.ASGITransport(app=build_app(gateway, run_background=False))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        _, headers = await register_and_authorize(
            gateway, client, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
        )
        client.headers.update(headers)
        placed = []
        for channel, number, quantity in (
            ("webshop", "WEB-1001", 2),
            ("webshop", "WEB-1002", 3),
            ("marketplace", "MKT-2001", 1),
        ):
            response = await client.post(
                "/process/v1/orders",
                json=order_payload(number, line(quantity=quantity), channel=channel),
            )
            assert response.status_code == 201, response.text
            placed.append(response.json())
        counted = await client.post(
            "/process/v1/inventory/counts",
            json={
                "as_of": gateway.clock.now().isoformat(),
                "counts": [{"sku": "MUG-RED-350", "on_hand": 1}],
            },
        )
        assert counted.status_code == 200, counted.text
    others = [
        ("settlement", "payout_mismatch", "marketplace", Severity.MEDIUM, "finance"),
        ("pricing", "price_rejected", "webshop", Severity.LOW, "pricing-desk"),
    ]
    for workflow, code, channel, severity, team in others:
        gateway.store.write_sync(
            functools.partial(
                open_exception,
                workflow=workflow,
                code=code,
                subject=f"{channel}/{code}",
                channel=channel,
                severity=severity,
                detail=f"{code} on {channel}",
                owner_team=team,
            )
        )
    operators_of(gateway).add_sync("alice", PASSWORD, display_name="Alice Ops", actor="seed")
    return {"orders": placed}


def in_a_thread(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to its end on a thread of its own (Playwright holds this one's loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


def wait_for_dead_letters(url: str, timeout: float = 60) -> int:
    """Until the served gateway's sender has given up on the failing receiver and has nothing
    pending (two looks in a row agree), in real time; how many dead letters there are."""
    database = Database(url)

    def count(conn: Connection) -> tuple[int, int]:
        rows: dict[str, int] = dict(
            conn.execute(
                select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
            ).all()
        )
        return int(rows.get("dead", 0)), int(rows.get("pending", 0))

    try:
        deadline = time.monotonic() + timeout
        seen: tuple[int, int] | None = None
        while time.monotonic() < deadline:
            now = database.run_read(count)
            if now[0] and not now[1] and now == seen:
                return now[0]
            seen = now
            time.sleep(0.3)
    finally:
        database.dispose()
    raise AssertionError(f"dead letters did not settle: (dead, pending) = {seen}")


def test_an_operator_signs_in_filters_the_queue_and_replays_a_dead_letter(
    chromium: Any, receiver: Receiver, tmp_path: Path
) -> None:
    url = migrated_sqlite(tmp_path / "console.db")
    receiver.failing = True
    settings = Settings(
        database_url=url,
        key_encryption_key=TEST_ENVIRONMENT["GATEWAY_KEY_ENCRYPTION_KEY"],
        scheduler_enabled=False,
        webhook_allow_loopback=True,
    )
    gateway = build_gateway(settings, clock=SystemClock())
    gateway.keys.ensure()
    try:
        scenario = in_a_thread(seed(gateway, receiver))
    finally:
        in_a_thread(gateway.aclose())

    with GatewayProcess(
        url,
        tmp_path / "serve.log",
        GATEWAY_WEBHOOK_ALLOW_LOOPBACK="true",
        GATEWAY_WEBHOOK_MAX_ATTEMPTS="1",
        GATEWAY_WEBHOOK_POLL_SECONDS="0.1",
    ) as served:
        dead = wait_for_dead_letters(url)
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})

        page.goto(f"{served.url}/ops/")
        assert "/ops/sign-in" in page.url
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{served.url}/ops/")
        text = page.inner_text("main")
        assert "webshop" in text
        assert "marketplace" in text
        for order in scenario["orders"]:
            assert order["status"] in text
        REPORTS.mkdir(exist_ok=True)
        page.screenshot(path=str(REPORTS / "ops-console-overview.png"), full_page=True)

        page.click("text=Exceptions")
        page.fill("#exception-filters input[name=channel]", "marketplace")
        page.click("#exception-filters button[type=submit]")
        page.wait_for_url("**/ops/exceptions?channel=marketplace**")
        queue = page.locator("#exception-queue tbody tr")
        assert queue.count() == 1
        assert "payout_mismatch" in queue.first.inner_text()

        page.fill("#exception-filters input[name=channel]", "")
        page.select_option("#exception-filters select[name=severity]", "high")
        page.select_option("#exception-filters select[name=status]", "open")
        page.click("#exception-filters button[type=submit]")
        page.wait_for_url("**/ops/exceptions?channel=&severity=high**")
        assert queue.count() == 1
        row = queue.first.inner_text()
        assert "stock_shortfall" in row
        assert "inventory_sync" in row
        assert "payout_mismatch" not in page.inner_text("#exception-queue")
        page.screenshot(path=str(REPORTS / "ops-console-exceptions.png"), full_page=True)

        page.click("text=Dead letters")
        replay_buttons = page.locator("#dead-letters button", has_text="Replay")
        assert replay_buttons.count() == dead
        first_event = page.locator("#dead-letters tbody tr").first.inner_text()
        page.screenshot(path=str(REPORTS / "ops-console-dead-letters.png"), full_page=True)
        receiver.failing = False
        replay_buttons.first.click()
        page.wait_for_selector("text=Dead letter replayed")
        accepted = receiver.wait_for_accepted(1, timeout=60)
        assert accepted, "the receiver never got the replayed event"
        assert accepted[0]["type"] in first_event

        page.click("text=Audit log")
        audit = page.inner_text("#audit-log")
        assert "delivery.replayed" in audit
        assert "operator:alice" in audit
        page.close()
