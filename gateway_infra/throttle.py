"""Request throttling: every tier is a burst and a sustained policy, counted in Redis or in memory.

`Throttle.check(namespace, subject, tier)` counts one request of `subject` (a client id, an IP
address) against both policies of `tier` and answers a `ThrottleDecision` carrying the
RateLimit-Policy and RateLimit fields of draft-ietf-httpapi-ratelimit-headers-10 (plus
Retry-After when refused). Counters live in Redis when a URL is given, so every worker and
replica shares them; else in this process's memory. docs/decisions/0003 explains the choices
(not slowapi, the exact moving window, the redis-py client, fail-open) and 0016 why the windows
are counted here (one Redis script per check; in memory without awaiting) instead of by `limits`.

Dependencies put `decision.headers` in `request.state.response_headers` (`add_response_headers`)
and `StateHeadersMiddleware` copies them onto whatever response leaves the app.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple

import redis.asyncio as aredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_infra.problems import BACKEND_UNAVAILABLE, TOO_MANY_REQUESTS, ProblemError
from gateway_infra.settings import ThrottleTier

log = logging.getLogger("gateway.throttle")

POLICY_HEADER = "RateLimit-Policy"
STATE_HEADER = "RateLimit"
RETRY_AFTER_HEADER = "Retry-After"
RESPONSE_HEADERS_STATE = "response_headers"
"""Key of `request.state` (scope["state"]) whose dict StateHeadersMiddleware adds to responses."""

_STORAGE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
_KEY_NAMESPACE = "throttle"


class WindowStats(NamedTuple):
    """One policy's window: when its oldest counted request leaves it, and what is left."""

    reset_time: float
    remaining: int


# Both policies of a tier in one round trip, atomically: each window drops what left it, then
# the request is counted in every window or (when one has nothing left) in none. Windows are
# sorted sets of request times in microseconds of the Redis server's clock, so every worker and
# replica counts on one clock. Members are unique: the time plus the window's size at the hit.
_WINDOWS_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local stamp = string.format('%.0f', now)
local counts, oldest = {}, {}
local allowed = 1
for i = 1, #KEYS do
  local quota = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1]) * 1000000
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
  local first = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
  oldest[i] = first[2] and string.format('%.0f', tonumber(first[2])) or '-1'
  if counts[i] >= quota then allowed = 0 end
end
if ARGV[1] == '1' and allowed == 1 then
  for i = 1, #KEYS do
    redis.call('ZADD', KEYS[i], stamp, stamp .. '-' .. counts[i])
    redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2 * i + 1]) * 1000)
  end
end
return {allowed, stamp, counts, oldest}
"""


@dataclass(frozen=True)
class ThrottleDecision:
    """Whether one request may go on, when to retry if not, and the fields that say so."""

    allowed: bool
    retry_after: int | None
    headers: dict[str, str] = field(default_factory=dict)


class ThrottleUnavailable(ProblemError):
    """503: the shared counters cannot be reached and the throttle was built to fail closed."""

    def __init__(self) -> None:
        super().__init__(
            BACKEND_UNAVAILABLE,
            "request limits cannot be checked right now",
            headers={RETRY_AFTER_HEADER: "1"},
        )


@dataclass(frozen=True)
class _Policy:
    name: str
    quota: int
    window_seconds: int


@lru_cache(maxsize=256)
def _policies(tier: ThrottleTier) -> tuple[_Policy, _Policy]:
    return (
        _policy("burst", tier.burst, tier.burst_window_seconds),
        _policy("sustained", tier.sustained, tier.sustained_window_seconds),
    )


def _policy(name: str, quota: int, window_seconds: int) -> _Policy:
    return _Policy(name, quota, window_seconds)


class _LocalWindows:
    """Moving windows counted in this process: per (namespace, policy, subject) the times of the
    requests counted in the window, oldest first.

    The same exact moving window as `limits` (at most `quota` requests in any `window_seconds`;
    the reset is the oldest counted request + the window), without awaiting anything: the
    `limits.aio` memory storage took several event-loop iterations and a thread-pool hand-off
    per check (193 us against 8 us here at the benchmark's quotas; decision 0016). Subjects
    whose windows emptied are forgotten every `_SWEEP_EVERY` checks, so memory follows the
    active subjects.
    """

    _SWEEP_EVERY = 10_000

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], deque[float]] = {}
        self._longest = 0
        self._checks = 0

    def _window(self, key: tuple[str, str, str], window: int, now: float) -> deque[float] | None:
        entries = self._entries.get(key)
        if entries:
            horizon = now - window
            while entries and entries[0] <= horizon:
                entries.popleft()
        return entries

    def stats(self, key: tuple[str, str, str], policy: _Policy, now: float) -> WindowStats:
        entries = self._window(key, policy.window_seconds, now)
        if not entries:
            return WindowStats(now + policy.window_seconds, policy.quota)
        return WindowStats(entries[0] + policy.window_seconds, policy.quota - len(entries))

    def hit(self, key: tuple[str, str, str], policy: _Policy, now: float) -> bool:
        entries = self._window(key, policy.window_seconds, now)
        if entries is None:
            entries = self._entries[key] = deque()
        if len(entries) >= policy.quota:
            return False
        entries.append(now)
        self._longest = max(self._longest, policy.window_seconds)
        self._checks += 1
        if self._checks >= self._SWEEP_EVERY:
            self._sweep(now)
        return True

    def clear(self, key: tuple[str, str, str]) -> None:
        self._entries.pop(key, None)

    def _sweep(self, now: float) -> None:
        self._checks = 0
        horizon = now - self._longest
        for key in [
            k for k, entries in self._entries.items() if not entries or entries[-1] <= horizon
        ]:
            del self._entries[key]


@lru_cache(maxsize=256)
def policy_header(tier: ThrottleTier) -> str:
    """RateLimit-Policy of a tier: `"burst";q=10;w=1, "sustained";q=600;w=60`."""
    return ", ".join(f'"{p.name}";q={p.quota};w={p.window_seconds}' for p in _policies(tier))


def _seconds_until(reset_time: float, now: float, remaining: int) -> int:
    """Whole seconds until `reset_time`; at least 1 when nothing remains (the limit still holds).

    The clamp matters: a window's reset can be exactly `now` (or a hair before it) while its
    quota is still used up, and "retry after 0 s" would invite an immediate second refusal.
    """
    seconds = max(0, math.ceil(reset_time - now))
    return max(1, seconds) if remaining < 1 else seconds


class Throttle:
    """Counts requests per (namespace, subject) against the two policies of a ThrottleTier.

    `redis_url=None` keeps the counters in this process (each worker then has its own quota);
    a `redis://`, `rediss://` or `unix://` URL shares them between workers and replicas.

    When Redis cannot be reached the throttle fails open by default: requests are let through
    uncounted (with RateLimit-Policy but no RateLimit field) and a warning is logged at most once
    per `warning_interval_seconds`. With `fail_open=False` `check` raises ThrottleUnavailable
    (503, Retry-After: 1) instead. After a failure Redis is left alone for
    `outage_pause_seconds`, so an unreachable server costs one timeout per pause, not one per
    request. Every Redis operation (connecting, waiting for one of the `redis_max_connections`
    pooled connections, a command) gives up after `redis_timeout_seconds`, without retries.
    """

    def __init__(
        self,
        redis_url: str | None,
        key_prefix: str = "rsg",
        *,
        fail_open: bool = True,
        redis_timeout_seconds: float = 0.5,
        redis_max_connections: int = 64,
        outage_pause_seconds: float = 1.0,
        warning_interval_seconds: float = 10.0,
    ) -> None:
        self.fail_open = fail_open
        self.shared = redis_url is not None
        self.key_prefix = key_prefix
        self._outage_pause = outage_pause_seconds
        self._warning_interval = warning_interval_seconds
        self._pool: aredis.ConnectionPool | None = None
        self._local: _LocalWindows | None = None
        self._redis: aredis.Redis | None = None
        self._windows: AsyncScript | None = None
        if redis_url is None:
            self._local = _LocalWindows()
        else:
            _check_redis_url(redis_url)
            self._pool = aredis.BlockingConnectionPool.from_url(
                redis_url,
                max_connections=redis_max_connections,
                timeout=redis_timeout_seconds,
                socket_timeout=redis_timeout_seconds,
                socket_connect_timeout=redis_timeout_seconds,
                retry=Retry(NoBackoff(), 0),
            )
            self._redis = aredis.Redis(connection_pool=self._pool)
            self._windows = self._redis.register_script(_WINDOWS_SCRIPT)
        self._closed = False
        self._paused_until = 0.0
        self._outage_started: float | None = None
        self._next_warning = 0.0
        self._unwarned = 0

    async def aclose(self) -> None:
        """Release the Redis connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._pool is not None:
            await self._pool.aclose()

    async def check(self, namespace: str, subject: str, tier: ThrottleTier) -> ThrottleDecision:
        """Count one request of `subject` in `namespace` (e.g. "partner", "token") against `tier`.

        A refused request consumes nothing: the request is counted in both policies' windows,
        or, when either has no quota left, in neither. Both are read and counted in one step
        (one Redis script, or in this process without awaiting), so concurrent requests of one
        subject cannot race between the read and the count.
        """
        if not namespace or "/" in namespace:
            raise ValueError(f"namespace must be non-empty and contain no '/': {namespace!r}")
        policies = _policies(tier)
        if self._local is not None:
            return self._count_locally(self._local, namespace, subject, tier, policies)
        if self._paused_until and time.monotonic() < self._paused_until:
            return self._unavailable(tier, None)
        try:
            decision = await self._count(namespace, subject, tier, policies)
        except _STORAGE_ERRORS as exc:
            return self._unavailable(tier, exc)
        if self._outage_started is not None:
            self._recovered()
        return decision

    async def peek(self, namespace: str, subject: str, tier: ThrottleTier) -> ThrottleDecision:
        """Whether `subject` has quota left in `namespace`, counting nothing: for limits that
        count only some outcomes (failed sign-ins), read before the attempt and `check`ed
        after a failure. Storage outages are handled as in `check`."""
        if not namespace or "/" in namespace:
            raise ValueError(f"namespace must be non-empty and contain no '/': {namespace!r}")
        policies = _policies(tier)
        if self._paused_until and time.monotonic() < self._paused_until:
            return self._unavailable(tier, None)
        try:
            now, stats = await self._stats(namespace, subject, policies)
        except _STORAGE_ERRORS as exc:
            return self._unavailable(tier, exc)
        if self._outage_started is not None:
            self._recovered()
        if any(s.remaining < 1 for s in stats):
            return _refused(tier, policies, stats, now)
        return ThrottleDecision(True, None, _headers(tier, policies, stats, now))

    @staticmethod
    def _count_locally(
        local: _LocalWindows,
        namespace: str,
        subject: str,
        tier: ThrottleTier,
        policies: Sequence[_Policy],
    ) -> ThrottleDecision:
        """`_count` on this process's windows: nothing else runs between the read and the hits."""
        now = time.time()
        keys = [(namespace, p.name, subject) for p in policies]
        stats = [local.stats(key, p, now) for key, p in zip(keys, policies, strict=True)]
        if any(s.remaining < 1 for s in stats):
            return _refused(tier, policies, stats, now)
        for key, policy in zip(keys, policies, strict=True):
            local.hit(key, policy, now)
        return _counted(tier, policies, stats, now)

    async def _count(
        self, namespace: str, subject: str, tier: ThrottleTier, policies: Sequence[_Policy]
    ) -> ThrottleDecision:
        allowed, now, stats = await self._run_windows(namespace, subject, policies, hit=True)
        if not allowed:
            return _refused(tier, policies, stats, now)
        return _counted(tier, policies, stats, now)

    async def _stats(
        self, namespace: str, subject: str, policies: Sequence[_Policy]
    ) -> tuple[float, list[WindowStats]]:
        """The counters' clock now and each policy's window, counting nothing."""
        if self._local is not None:
            now = time.time()
            local = self._local
            return now, [local.stats((namespace, p.name, subject), p, now) for p in policies]
        _, now, stats = await self._run_windows(namespace, subject, policies, hit=False)
        return now, stats

    async def _run_windows(
        self, namespace: str, subject: str, policies: Sequence[_Policy], *, hit: bool
    ) -> tuple[bool, float, list[WindowStats]]:
        """The Redis script over the policies' windows: allowed, Redis's now, stats before."""
        assert self._windows is not None
        args: list[int] = [1 if hit else 0]
        for policy in policies:
            args += [policy.quota, policy.window_seconds]
        keys = [self._key(namespace, policy, subject) for policy in policies]
        allowed, now_us, counts, oldest = await self._windows(keys=keys, args=args)
        now = int(now_us) / 1_000_000
        stats = [
            WindowStats(
                now + policy.window_seconds
                if int(first) < 0
                else int(first) / 1_000_000 + policy.window_seconds,
                policy.quota - int(count),
            )
            for policy, count, first in zip(policies, counts, oldest, strict=True)
        ]
        return bool(allowed), now, stats

    def _key(self, namespace: str, policy: _Policy, subject: str) -> str:
        # The hash tag {namespace/subject} keeps both windows of a check in one cluster slot.
        return (
            f"{self.key_prefix}:{_KEY_NAMESPACE}/{{{namespace}/{subject}}}/{policy.name}"
            f"/{policy.quota}/{policy.window_seconds}/window"
        )

    async def clear(self, namespace: str, subject: str, tier: ThrottleTier) -> None:
        """Forget the counted requests of `subject` (an operator's reset; also used by tests)."""
        for policy in _policies(tier):
            if self._local is not None:
                self._local.clear((namespace, policy.name, subject))
            else:
                assert self._redis is not None
                await self._redis.delete(self._key(namespace, policy, subject))

    def _unavailable(self, tier: ThrottleTier, exc: BaseException | None) -> ThrottleDecision:
        now = time.monotonic()
        if exc is not None:
            self._paused_until = now + self._outage_pause
            if self._outage_started is None:
                self._outage_started = now
        self._unwarned += 1
        if now >= self._next_warning:
            self._next_warning = now + self._warning_interval
            log.warning(
                "throttle storage unavailable, %s (%d request(s) since the last warning): %s",
                "letting requests through uncounted"
                if self.fail_open
                else "refusing requests with 503",
                self._unwarned,
                _describe(exc),
            )
            self._unwarned = 0
        if not self.fail_open:
            raise ThrottleUnavailable()
        return ThrottleDecision(True, None, {POLICY_HEADER: policy_header(tier)})

    def _recovered(self) -> None:
        assert self._outage_started is not None
        log.warning(
            "throttle storage available again after %.1f s", time.monotonic() - self._outage_started
        )
        self._outage_started = None
        self._paused_until = 0.0
        self._next_warning = 0.0
        self._unwarned = 0


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "still pausing after the last failure"
    return f"{type(exc).__name__}: {exc}"


def _check_redis_url(redis_url: str) -> None:
    scheme, separator, _ = redis_url.partition("://")
    if not separator or scheme not in ("redis", "rediss", "unix"):
        raise ValueError("redis_url must be a redis://, rediss:// or unix:// URL")


def _counted(
    tier: ThrottleTier, policies: Sequence[_Policy], stats: Sequence[WindowStats], now: float
) -> ThrottleDecision:
    """A request let through and counted at `now`, given the windows just before. The oldest
    entry of each window (its reset time) is unchanged, or is the new one when the window was
    empty, as the stats already say; one unit less remains."""
    after = [WindowStats(s.reset_time, s.remaining - 1) for s in stats]
    return ThrottleDecision(True, None, _headers(tier, policies, after, now))


def _refused(
    tier: ThrottleTier,
    policies: Sequence[_Policy],
    stats: Sequence[WindowStats],
    now: float,
) -> ThrottleDecision:
    """A refusal: RateLimit fields and Retry-After at `now` (the counters' clock)."""
    retry_after = max(
        (_seconds_until(s.reset_time, now, s.remaining) for s in stats if s.remaining < 1),
        default=1,
    )
    headers = _headers(tier, policies, stats, now)
    headers[RETRY_AFTER_HEADER] = str(retry_after)
    return ThrottleDecision(False, retry_after, headers)


def _headers(
    tier: ThrottleTier, policies: Sequence[_Policy], stats: Sequence[WindowStats], now: float
) -> dict[str, str]:
    state = ", ".join(
        f'"{p.name}";r={max(0, s.remaining)};t={_seconds_until(s.reset_time, now, s.remaining)}'
        for p, s in zip(policies, stats, strict=True)
    )
    return {POLICY_HEADER: policy_header(tier), STATE_HEADER: state}


def raise_if_throttled(decision: ThrottleDecision, detail: str | None = None) -> None:
    """Raise the 429 problem (with RateLimit fields and Retry-After) of a refused decision."""
    if decision.allowed:
        return
    raise ProblemError(
        TOO_MANY_REQUESTS,
        detail or f"request limit reached; retry after {decision.retry_after} s",
        headers=decision.headers,
    )


def add_response_headers(connection: HTTPConnection, headers: Mapping[str, str]) -> None:
    """Have StateHeadersMiddleware add `headers` to this request's response, whatever it is."""
    state: dict[str, Any] = connection.scope.setdefault("state", {})
    pending = state.get(RESPONSE_HEADERS_STATE)
    if not isinstance(pending, dict):
        pending = state[RESPONSE_HEADERS_STATE] = {}
    pending.update(headers)


class StateHeadersMiddleware:
    """Adds `scope["state"]["response_headers"]` to the response, except names already set.

    Dependencies run after this middleware is entered, so the dict is read when the response
    starts. A response that sets a field itself (a 429 problem carries its own RateLimit
    fields) keeps its value; installing the middleware on a parent and a mounted app is harmless.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_state_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = scope.get("state", {}).get(RESPONSE_HEADERS_STATE)
                if isinstance(extra, Mapping) and extra:
                    message = {**message, "headers": _merged(message.get("headers", ()), extra)}
            await send(message)

        await self.app(scope, receive, send_with_state_headers)


def _merged(
    headers: Sequence[tuple[bytes, bytes]], extra: Mapping[Any, Any]
) -> list[tuple[bytes, bytes]]:
    merged = list(headers)
    present = {name.lower() for name, _ in merged}
    for name, value in extra.items():
        key = str(name).lower().encode("latin-1")
        if key not in present:
            merged.append((key, str(value).encode("latin-1")))
            present.add(key)
    return merged
