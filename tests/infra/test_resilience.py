"""Guards for remote backends: breaker, retries for idempotent calls only, concurrency cap."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import httpx
import pytest

from gateway_infra.clock import ManualClock
from gateway_infra.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    GuardPolicy,
    RemoteCallGuard,
    RemoteUnavailable,
)


class BusinessError(Exception):
    """The backend answered: it refuses the request."""


def guard(clock: ManualClock, **policy: float) -> RemoteCallGuard:
    breaker = CircuitBreaker("erp", clock, failure_threshold=3, reset_after=timedelta(seconds=10))
    values = {"attempts": 3, "backoff_base_seconds": 0.0, "backoff_max_seconds": 0.0, **policy}
    return RemoteCallGuard(
        breaker,
        GuardPolicy(**values),  # type: ignore[arg-type]
        is_unavailable=lambda exc: isinstance(exc, httpx.TransportError),
        rng=random.Random(1),
    )


def failing(counter: list[int]) -> object:
    async def operation() -> str:
        counter.append(1)
        raise httpx.ConnectError("refused")

    return operation


async def test_idempotent_calls_are_retried_and_others_are_not() -> None:
    clock = ManualClock()
    reads: list[int] = []
    writes: list[int] = []

    with pytest.raises(RemoteUnavailable):
        await guard(clock).call(failing(reads), idempotent=True)  # type: ignore[arg-type]
    with pytest.raises(RemoteUnavailable):
        await guard(clock).call(failing(writes), idempotent=False)  # type: ignore[arg-type]

    assert len(reads) == 3
    assert len(writes) == 1


async def test_the_breaker_opens_after_consecutive_failures_and_fails_fast() -> None:
    clock = ManualClock()
    protected = guard(clock, attempts=1)
    calls: list[int] = []
    for _ in range(3):
        with pytest.raises(RemoteUnavailable):
            await protected.call(failing(calls), idempotent=True)  # type: ignore[arg-type]

    with pytest.raises(CircuitOpen) as refused:
        await protected.call(failing(calls), idempotent=True)  # type: ignore[arg-type]

    assert protected.breaker.state is BreakerState.OPEN
    assert len(calls) == 3  # the fourth call never reached the backend
    assert refused.value.retry_after_seconds == 10


async def test_after_the_reset_time_one_trial_call_closes_the_breaker() -> None:
    clock = ManualClock()
    protected = guard(clock, attempts=1)
    for _ in range(3):
        with pytest.raises(RemoteUnavailable):
            await protected.call(failing([]), idempotent=True)  # type: ignore[arg-type]
    clock.advance(timedelta(seconds=10))

    async def healthy() -> str:
        return "ok"

    before = protected.breaker.state
    result = await protected.call(healthy, idempotent=True)

    assert before is BreakerState.HALF_OPEN
    assert result == "ok"
    assert protected.breaker.snapshot()["state"] == "closed"


async def test_a_failed_trial_opens_the_breaker_again() -> None:
    clock = ManualClock()
    protected = guard(clock, attempts=1)
    for _ in range(3):
        with pytest.raises(RemoteUnavailable):
            await protected.call(failing([]), idempotent=True)  # type: ignore[arg-type]
    clock.advance(timedelta(seconds=10))

    with pytest.raises(RemoteUnavailable):
        await protected.call(failing([]), idempotent=True)  # type: ignore[arg-type]

    assert protected.breaker.state is BreakerState.OPEN


async def test_business_errors_pass_through_and_do_not_count_as_failures() -> None:
    clock = ManualClock()
    protected = guard(clock, attempts=3)
    calls: list[int] = []

    async def refusing() -> str:
        calls.append(1)
        raise BusinessError("price list mismatch")

    for _ in range(5):
        with pytest.raises(BusinessError):
            await protected.call(refusing, idempotent=True)

    assert len(calls) == 5  # never retried
    assert protected.breaker.state is BreakerState.CLOSED


async def test_no_more_calls_than_the_concurrency_cap_are_in_flight() -> None:
    protected = guard(ManualClock(), max_concurrency=2, calls_per_second=1000)
    in_flight = 0
    most = 0

    async def slow() -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        in_flight -= 1

    await asyncio.gather(*(protected.call(slow, idempotent=True) for _ in range(10)))

    assert most == 2
