"""Calls to a system API over HTTP fail fast while its circuit breaker is open."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from gateway_infra.clock import ManualClock
from gateway_infra.resilience import BreakerState, CircuitBreaker
from system_api.errors import BackendUnavailable
from system_api.http_transport import SystemApiTransport


class Service:
    """A system API stand-in at the HTTP level: down or up, counting the requests it saw."""

    def __init__(self) -> None:
        self.up = False
        self.requests = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"ok": True})


@pytest.fixture
def service() -> Service:
    return Service()


def transport(service: Service, breaker: CircuitBreaker) -> SystemApiTransport:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(service.handle), base_url="http://system"
    )
    return SystemApiTransport("http://system", attempts=3, client=client, breaker=breaker)


async def test_an_open_breaker_answers_unavailable_without_calling_the_service(
    service: Service, clock: ManualClock
) -> None:
    breaker = CircuitBreaker("system_api", clock, failure_threshold=3)
    api = transport(service, breaker)

    with pytest.raises(BackendUnavailable):
        await api.request("GET", "/x")
    assert service.requests == 3
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(BackendUnavailable, match="circuit"):
        await api.request("GET", "/x")
    assert service.requests == 3
    await api.aclose()


async def test_after_the_reset_time_one_trial_call_closes_the_breaker_again(
    service: Service, clock: ManualClock
) -> None:
    breaker = CircuitBreaker(
        "system_api", clock, failure_threshold=3, reset_after=timedelta(seconds=15)
    )
    api = transport(service, breaker)
    with pytest.raises(BackendUnavailable):
        await api.request("GET", "/x")
    service.up = True

    clock.advance(timedelta(seconds=15))
    response, attempts = await api.request("GET", "/x")

    assert (response.status_code, attempts) == (200, 1)
    assert breaker.state is BreakerState.CLOSED
    await api.aclose()
