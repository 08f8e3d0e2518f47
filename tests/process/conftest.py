"""Process-API tests run twice: system_api called in-process, and over HTTP to a real uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import SYSTEM_SCOPES
from gateway_infra.clock import ManualClock
from tests.conftest import UvicornThread, make_settings, start_gateway


def system_api_settings(system_side: Gateway, url: str) -> dict[str, Any]:
    """Settings that make a gateway call the system API of another one over HTTP, with a token."""
    record, secret = system_side.clients.add(
        name="process-layer", kind=ClientKind.INTERNAL, scopes=SYSTEM_SCOPES
    )
    return {
        "system_api_transport": "http",
        "system_api_url": f"{url}/system",
        "system_api_token_url": f"{url}/oauth/token",
        "system_api_client_id": record.client_id,
        "system_api_client_secret": secret,
    }


@pytest.fixture(params=["in_process", "http"])
async def gateway(
    request: pytest.FixtureRequest, database_url: str, clock: ManualClock
) -> AsyncIterator[Gateway]:
    if request.param == "in_process":
        built = start_gateway(make_settings(database_url), clock)
        yield built
        await built.aclose()
        return
    system_side = start_gateway(make_settings(database_url), clock)
    server = UvicornThread(build_app(system_side, run_background=False)).start()
    built = start_gateway(
        make_settings(database_url, **system_api_settings(system_side, server.url)), clock
    )
    yield built
    await built.aclose()
    server.stop()
    await system_side.aclose()
