"""Guards for calls to remote systems of record: a timeout per call, retries with backoff and
jitter for idempotent calls only, a circuit breaker, a concurrency cap and a calls-per-second cap.

A remote ERP is slow and sometimes down; the gateway must neither pile up requests on it nor
hammer it while it recovers. The breaker's state is public so readiness and metrics can show it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from aiolimiter import AsyncLimiter

from gateway_infra.clock import Clock
from gateway_infra.metrics import BACKEND_REJECTED, breaker_changed, observe_backend_call

T = TypeVar("T")
log = logging.getLogger("gateway.resilience")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpen(Exception):
    """The breaker is open: the call was not attempted."""

    def __init__(self, backend: str, retry_after_seconds: int) -> None:
        super().__init__(f"{backend}: circuit open, retry in {retry_after_seconds} s")
        self.backend = backend
        self.retry_after_seconds = retry_after_seconds


class RemoteUnavailable(Exception):
    """The call failed for a reason that says the backend is unavailable (after retries)."""

    def __init__(self, backend: str, detail: str) -> None:
        super().__init__(f"{backend}: {detail}")
        self.backend = backend
        self.detail = detail


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures; after `reset_after` lets one trial
    call through (half open): its success closes the breaker, its failure opens it again."""

    def __init__(
        self,
        name: str,
        clock: Clock,
        *,
        failure_threshold: int = 5,
        reset_after: timedelta = timedelta(seconds=15),
    ) -> None:
        self.name = name
        self.clock = clock
        self.failure_threshold = failure_threshold
        self.reset_after = reset_after
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at: datetime | None = None
        self._trial_running = False
        self._lock = threading.Lock()
        breaker_changed(name, None, self._state.value)

    def _enter(self, state: BreakerState) -> None:
        if state is not self._state:
            breaker_changed(self.name, self._state.value, state.value)
            self._state = state

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._advance()
            return self._state

    def _advance(self) -> None:
        opened_at = self._opened_at
        due = opened_at is not None and self.clock.now() >= opened_at + self.reset_after
        if self._state is BreakerState.OPEN and due:
            self._enter(BreakerState.HALF_OPEN)
            self._trial_running = False

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go through now."""
        with self._lock:
            self._advance()
            if self._state is BreakerState.CLOSED:
                return
            if self._state is BreakerState.HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return
            BACKEND_REJECTED.labels(self.name).inc()
            raise CircuitOpen(self.name, self._retry_after())

    def _retry_after(self) -> int:
        if self._opened_at is None:
            return 1
        remaining = (self._opened_at + self.reset_after - self.clock.now()).total_seconds()
        return max(1, int(remaining + 0.999))

    def record_success(self) -> None:
        with self._lock:
            if self._state is not BreakerState.CLOSED:
                log.info("circuit closed", extra={"backend": self.name})
            self._enter(BreakerState.CLOSED)
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            trial_failed = self._state is BreakerState.HALF_OPEN
            if trial_failed or self._failures >= self.failure_threshold:
                if self._state is not BreakerState.OPEN:
                    log.warning(
                        "circuit opened", extra={"backend": self.name, "failures": self._failures}
                    )
                self._enter(BreakerState.OPEN)
                self._opened_at = self.clock.now()
                self._trial_running = False

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            self._advance()
            return {
                "state": self._state.value,
                "consecutive_failures": self._failures,
                "opened_at": self._opened_at.isoformat() if self._opened_at else None,
            }


@dataclass(frozen=True)
class GuardPolicy:
    timeout_seconds: float = 5.0
    attempts: int = 3
    backoff_base_seconds: float = 0.1
    backoff_max_seconds: float = 2.0
    max_concurrency: int = 4
    calls_per_second: float = 50.0


class RemoteCallGuard:
    """Runs calls to one remote backend under its policy and circuit breaker."""

    def __init__(
        self,
        breaker: CircuitBreaker,
        policy: GuardPolicy,
        *,
        is_unavailable: Callable[[BaseException], bool],
        rng: random.Random | None = None,
    ) -> None:
        self.breaker = breaker
        self.policy = policy
        self._is_unavailable = is_unavailable
        self._semaphore = asyncio.Semaphore(policy.max_concurrency)
        self._rate = AsyncLimiter(max(policy.calls_per_second, 0.001), time_period=1.0)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    async def call(self, operation: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Run operation; retried only when idempotent; RemoteUnavailable or CircuitOpen when
        the backend cannot be reached. Errors the backend answers with pass through untouched."""
        attempts = self.policy.attempts if idempotent else 1
        last = "no attempt"
        backend = self.breaker.name
        for attempt in range(1, attempts + 1):
            self.breaker.before_call()
            started = time.perf_counter()
            try:
                async with self._semaphore:
                    await self._rate.acquire()
                    started = time.perf_counter()
                    result = await asyncio.wait_for(operation(), self.policy.timeout_seconds)
            except TimeoutError:
                last = f"no answer within {self.policy.timeout_seconds:g} s"
            except Exception as exc:
                if not self._is_unavailable(exc):
                    # The backend answered (e.g. a business error): it is up.
                    observe_backend_call(
                        backend, ok=True, seconds=time.perf_counter() - started, attempt=attempt
                    )
                    self.breaker.record_success()
                    raise
                last = f"{type(exc).__name__}: {exc}"
            else:
                observe_backend_call(
                    backend, ok=True, seconds=time.perf_counter() - started, attempt=attempt
                )
                self.breaker.record_success()
                return result
            observe_backend_call(
                backend, ok=False, seconds=time.perf_counter() - started, attempt=attempt
            )
            self.breaker.record_failure()
            if attempt < attempts:
                ceiling = min(
                    self.policy.backoff_max_seconds,
                    self.policy.backoff_base_seconds * 2 ** (attempt - 1),
                )
                await asyncio.sleep(self._rng.uniform(0, ceiling))
        raise RemoteUnavailable(self.breaker.name, last)
