"""Exception tests run on a gateway in one process whose routing rules are tests.support.RULES."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.conftest import make_settings, start_gateway
from tests.process.exceptions.support import ROUTING


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    built = start_gateway(make_settings(database_url, exception_routing=ROUTING), clock)
    yield built
    await built.aclose()
