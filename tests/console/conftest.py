"""The ops console through HTTP (httpx against the composed app), as a browser would use it."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gateway import Gateway, operators_of
from gateway_infra.clock import ManualClock
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from process_api.console import Operator
from tests.conftest import free_port, make_settings, provisioned_database, start_gateway
from tests.factories import seed_products

CONSOLE_URL = "https://ops.example.test"
PASSWORD = "correct horse battery staple"
_TOKEN = re.compile(r'name="(?:csrf_token|form_token)" value="([^"]+)"')


def add_operator(gateway: Gateway, username: str = "alice", name: str = "Alice Ops") -> Operator:
    return operators_of(gateway).add_sync(username, PASSWORD, display_name=name, actor="test")


def gateway_with_erp_down(database_url: str, clock: ManualClock) -> Gateway:
    """A gateway whose ERP is a system API nobody answers on (orders stay reserved, waiting),
    with the webshop profile (acknowledgement within 15 minutes), the demo products and alice."""
    down = start_gateway(
        make_settings(
            database_url,
            system_api_transport="http",
            system_api_url=f"http://127.0.0.1:{free_port()}/system",
        ),
        clock,
    )
    webshop = DEMO_CHANNEL_PROFILES[0]
    down.channels.seed_sync([webshop.model_copy(update={"throttling_tier": "standard"})], actor="t")
    seed_products(down)
    add_operator(down)
    return down


def form_token(html: str) -> str:
    found = _TOKEN.search(html)
    assert found is not None, html
    return found.group(1)


async def sign_in(
    browser: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD
) -> httpx.Response:
    form = await browser.get("/ops/sign-in")
    assert form.status_code == 200, form.text
    return await browser.post(
        "/ops/sign-in",
        data={"username": username, "password": password, "form_token": form_token(form.text)},
    )


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A person's browser: keeps cookies, follows no redirects by itself, speaks HTTPS."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as c:
        yield c


@pytest.fixture
async def signed_in(gateway: Gateway, browser: httpx.AsyncClient) -> httpx.AsyncClient:
    add_operator(gateway)
    response = await sign_in(browser)
    assert response.status_code == 303, response.text
    return browser


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """SQLite: the console's pages are about HTTP; test_audit_log.py also runs on PostgreSQL."""
    with provisioned_database("sqlite", tmp_path) as url:
        yield url
