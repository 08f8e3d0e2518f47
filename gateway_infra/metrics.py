"""Prometheus metrics of the gateway (docs/metrics.md): the technical figures every process counts,
the /metrics endpoint, and figures read from the database when it is scraped.

Counters and histograms live in prometheus_client's default registry. With several worker
processes (`retail-gateway serve --workers N`), `serve` points PROMETHEUS_MULTIPROC_DIR at a fresh
directory before the workers start; each worker then writes its figures to files there and a scrape
of any worker adds up every worker's (prometheus_client's multiprocess mode). Figures about stored
state (orders, exceptions, outbox, deliveries) are not counted in memory at all: a `ScrapeSource`
reads them from the database at scrape time, so every worker answers the same and a restart
changes nothing.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from gateway_infra.networks import parse_networks
from gateway_infra.problems import FORBIDDEN, UNAUTHORIZED, problem_response

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
WORKER_HEADER = "Gateway-Worker"
log = logging.getLogger("gateway.metrics")
# The text format generate_latest writes, understood by every Prometheus version.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"

# Seconds; from a cached read to a slow backend call.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# The *_created series say when a process first counted a label set: noise for the gateway's
# figures, and absent in multiprocess mode anyway.
disable_created_metrics()  # type: ignore[no-untyped-call]

# ---------------------------------------------------------------- counted in each process

HTTP_REQUESTS = Counter(
    "gateway_http_requests",
    "HTTP requests answered, by app, route template, method and status code.",
    ("app", "route", "method", "status"),
)
HTTP_LATENCY = Histogram(
    "gateway_http_request_duration_seconds",
    "Time from a request's arrival until the last part of its answer is sent, by app, route "
    "template and method.",
    ("app", "route", "method"),
    buckets=LATENCY_BUCKETS,
)
BACKEND_CALLS = Histogram(
    "gateway_backend_call_duration_seconds",
    "One attempt of a call to a backend (Tryton, a system API over HTTP), by backend and outcome "
    "(ok: answered; unavailable: failed, timed out or answered 502/503/504).",
    ("backend", "outcome"),
    buckets=LATENCY_BUCKETS,
)
BACKEND_RETRIES = Counter(
    "gateway_backend_call_retries",
    "Attempts of backend calls beyond the first, by backend.",
    ("backend",),
)
BACKEND_REJECTED = Counter(
    "gateway_backend_calls_short_circuited",
    "Backend calls refused without an attempt because the backend's circuit breaker was open.",
    ("backend",),
)
BREAKER_STATE = Gauge(
    "gateway_circuit_breaker_state",
    "Worker processes whose breaker for a backend is in this state (closed, open, half_open).",
    ("backend", "state"),
    multiprocess_mode="livesum",
)
BREAKER_TRANSITIONS = Counter(
    "gateway_circuit_breaker_transitions",
    "Changes of a backend's circuit breaker into a state, by backend and new state.",
    ("backend", "state"),
)
THROTTLED = Counter(
    "gateway_throttled_requests",
    "Requests refused with 429 by the request limits, by namespace (partner, oauth-token) and "
    "subject (the partner's client id; for the token endpoint, 'ip' only).",
    ("namespace", "subject"),
)
IDEMPOTENT_REPLAYS = Counter(
    "gateway_idempotent_replays",
    "Partner requests answered with the stored answer of an earlier request with the same "
    "Idempotency-Key, by partner client id.",
    ("client_id",),
)
WORKERS = Gauge(
    "gateway_worker_processes",
    "Gateway processes serving (with `serve --workers N`: the live workers).",
    multiprocess_mode="livesum",
)
WEBHOOK_ATTEMPTS = Counter(
    "gateway_webhook_delivery_attempts",
    "Webhook delivery attempts made by this gateway's senders, by outcome "
    "(succeeded, failed, refused).",
    ("outcome",),
)
WEBHOOK_LATENCY = Histogram(
    "gateway_webhook_delivery_duration_seconds",
    "Time one webhook delivery attempt took, by outcome.",
    ("outcome",),
    buckets=LATENCY_BUCKETS,
)


def observe_backend_call(backend: str, *, ok: bool, seconds: float, attempt: int) -> None:
    """Record one attempt of a backend call (attempt counts from 1)."""
    BACKEND_CALLS.labels(backend, "ok" if ok else "unavailable").observe(seconds)
    if attempt > 1:
        BACKEND_RETRIES.labels(backend).inc()


def breaker_changed(backend: str, old: str | None, new: str) -> None:
    """A circuit breaker of this process entered `new` (from `old`, None when it was created)."""
    if old is not None:
        BREAKER_STATE.labels(backend, old).dec()
        BREAKER_TRANSITIONS.labels(backend, new).inc()
    BREAKER_STATE.labels(backend, new).inc()


# ---------------------------------------------------------------- HTTP requests

_APPS = (
    ("/system", "system"),
    ("/process", "process"),
    ("/partner", "partner"),
    ("/oauth", "oauth"),
    ("/.well-known", "oauth"),
    ("/ops", "ops"),
)
UNMATCHED_ROUTE = "(unmatched)"
# The request methods counted by name; any other (a client may send any token) counts as
# `other`, so made-up methods cannot add series.
KNOWN_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
OTHER_METHOD = "other"


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else OTHER_METHOD


def app_of(path: str) -> str:
    for prefix, app in _APPS:
        if path == prefix or path.startswith(prefix + "/"):
            return app
    return "gateway"


@lru_cache(maxsize=4096)
def _request_series(app: str, template: str, method: str, status: int) -> tuple[Any, Any]:
    """The counter and histogram children of one series, looked up once (labels() takes a lock
    and checks its arguments on every call); labels are bounded (templates, fixed methods)."""
    return (
        HTTP_REQUESTS.labels(app, template, method, str(status)),
        HTTP_LATENCY.labels(app, template, method),
    )


def count_request(scope: Scope, entry_root: str, status: int, seconds: float) -> None:
    """Count one answered request and its latency, labelled by the route template it matched
    (mount prefix plus route path, e.g. /process/v1/orders/{order_id}), never by the raw path,
    so ids in paths do not create series. `entry_root` is the root path the request had where
    it was first seen (before any mount added to it).

    The shared HTTP middleware of the root app calls it (gateway_infra.http), just before the
    last part of the answer is handed on, so a client that has its answer finds it counted; or
    once the request ended without a complete answer (an error, a client gone)."""
    route_path = getattr(scope.get("route"), "path", None)
    mounted = str(scope.get("root_path", ""))[len(entry_root) :]
    endpoint = scope.get("endpoint")
    if isinstance(route_path, str):
        template = mounted + route_path
    elif mounted and endpoint is not None and not hasattr(endpoint, "routes"):
        # A mounted app without routes of its own (static files): its mount path.
        template = mounted + "/{path}"
    else:
        template = UNMATCHED_ROUTE
    app = app_of(str(scope.get("path", "")))
    method = method_label(str(scope.get("method", "")))
    count, latency = _request_series(app, template, method, status)
    count.inc()
    latency.observe(seconds)


# ---------------------------------------------------------------- figures read at scrape time

ScrapeSource = Callable[[datetime], Awaitable[Sequence[Metric]]]
"""Reads figures from stored state at `now`; called once per scrape."""


class _Fixed(Collector):
    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        yield from self._metrics


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


async def exposition(sources: Mapping[str, ScrapeSource], now: datetime) -> bytes:
    """The text exposition: this process's (or, in multiprocess mode, every worker's) counted
    figures, then the figures each named source reads at `now`. A source that fails (its
    database unreachable) is left out and shows as `gateway_scrape_source_up{source} 0`; the
    rest is still served."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Union(REGISTRY))
    stored: list[Metric] = []
    up = GaugeMetricFamily(
        "gateway_scrape_source_up",
        "1 when the figures of this source were read for this scrape, 0 when reading failed.",
        labels=("source",),
    )
    for name, source in sources.items():
        try:
            stored.extend(await source(now))
        except Exception:
            log.exception("reading figures for /metrics failed", extra={"source": name})
            up.add_metric((name,), 0)
        else:
            up.add_metric((name,), 1)
    stored.append(up)
    registry.register(_Fixed(stored))
    return generate_latest(registry)


class _Union(Collector):
    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


# ---------------------------------------------------------------- access and the endpoint


LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
PRIVATE_NETWORKS = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7"
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for")


class MetricsAccess:
    """Who may scrape: a client address inside an allowed network and, when a token is set, the
    bearer token too.

    Networks unset: loopback only, or loopback and private networks when a token is set. A
    request that came through a proxy the gateway does not trust (it carries Forwarded or
    X-Forwarded-For and `trust_forwarded` is false) is refused unless a token is set: its
    address is the proxy's, which says nothing about the caller."""

    def __init__(
        self, networks: str | None, bearer_token: str | None, *, trust_forwarded: bool = False
    ) -> None:
        if networks is None:
            networks = LOOPBACK_NETWORKS
            if bearer_token is not None:
                networks += "," + PRIVATE_NETWORKS
        self.networks = parse_networks(networks)
        self.bearer_token = bearer_token
        self.trust_forwarded = trust_forwarded

    def refusal(self, request: Request) -> Response | None:
        host = request.client.host if request.client else None
        try:
            address = ipaddress.ip_address(host) if host else None
        except ValueError:
            address = None
        if address is None or not any(address in network for network in self.networks):
            return problem_response(FORBIDDEN, "metrics are not served to this address")
        if (
            self.bearer_token is None
            and not self.trust_forwarded
            and any(name in request.headers for name in FORWARDED_HEADERS)
        ):
            return problem_response(
                FORBIDDEN, "metrics are not served through a proxy the gateway does not trust"
            )
        if self.bearer_token is not None:
            scheme, _, supplied = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                supplied.strip().encode(), self.bearer_token.encode()
            ):
                return problem_response(
                    UNAUTHORIZED,
                    "metrics need the scrape bearer token",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
        return None


def metrics_endpoint(
    access: MetricsAccess, sources: Mapping[str, ScrapeSource], now: Callable[[], datetime]
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        refused = access.refusal(request)
        if refused is not None:
            return refused
        body = await exposition(sources, now())
        # Which worker process answered; every figure is the same from each of them.
        return Response(body, media_type=TEXT_FORMAT, headers={WORKER_HEADER: str(os.getpid())})

    return endpoint


# ---------------------------------------------------------------- worker processes


def prepare_multiprocess_dir(configured: str | None) -> tuple[str, bool]:
    """The directory the workers of one `serve` share, emptied of an earlier run's files, and
    whether `serve` created it (and so removes it when it stops)."""
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        return str(path), False
    return tempfile.mkdtemp(prefix="gateway-metrics-"), True


def remove_multiprocess_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def process_started() -> None:
    WORKERS.inc()


def process_stopped() -> None:
    """This worker stops: its live gauges (breaker states) leave the sums; counters stay."""
    WORKERS.dec()
    directory = multiprocess_dir()
    if directory:
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


__all__ = [
    "BACKEND_REJECTED",
    "IDEMPOTENT_REPLAYS",
    "MULTIPROC_ENV",
    "THROTTLED",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_LATENCY",
    "WORKER_HEADER",
    "MetricsAccess",
    "ScrapeSource",
    "breaker_changed",
    "count_request",
    "exposition",
    "metrics_endpoint",
    "observe_backend_call",
    "prepare_multiprocess_dir",
    "process_started",
    "process_stopped",
    "remove_multiprocess_dir",
]
