"""/metrics of a real `retail-gateway serve --workers 2`: whichever worker answers a scrape, the
business figures are the same (read from the database) and the request counters are the sum of
both workers' counts (prometheus_client's multiprocess mode); a restart changes no stored figure."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import SystemClock
from gateway_infra.metrics import WORKER_HEADER
from tests.conftest import (
    INTERNAL_SCOPES,
    GatewayProcess,
    make_settings,
    provisioned_database,
    start_gateway,
)
from tests.factories import order_payload, seed_products
from tests.scrape import Samples

pytestmark = pytest.mark.slow

MISSING_ORDER = {
    "app": "process",
    "route": "/process/v1/orders/{order_id}",
    "method": "GET",
    "status": "404",
}
STORED_FIGURES = (
    "gateway_orders",
    "gateway_acknowledgements_pending",
    "gateway_acknowledgements_overdue",
    "gateway_exceptions_open",
    "gateway_sla_breaches_total",
)


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """One database per run, as a scaled-out gateway has: PostgreSQL when the suite has one."""
    kind = "postgres" if os.environ.get("TEST_DATABASE_URL") else "sqlite"
    with provisioned_database(kind, tmp_path) as url:
        yield url


@pytest.fixture
def offline(database_url: str) -> Iterator[Gateway]:
    """The database prepared from outside the served processes (as the CLI would)."""
    built = start_gateway(make_settings(database_url), SystemClock())
    yield built
    built.database.dispose()


def two_workers(database_url: str, log: Path, shared: Path) -> GatewayProcess:
    return GatewayProcess(database_url, log, workers=2, GATEWAY_METRICS_MULTIPROC_DIR=str(shared))


def worker_counts(directory: Path, pid: str) -> Samples:
    """One worker's own counted figures, read from its file alone."""
    with tempfile.TemporaryDirectory() as alone:
        for own in directory.glob(f"*_{pid}.db"):
            (Path(alone) / own.name).symlink_to(own)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=alone)  # type: ignore[no-untyped-call]
        return Samples.parse(generate_latest(registry).decode())


def scrape_each_worker(url: str) -> dict[str, Samples]:
    """Scrape over new connections until both workers have answered (the second may still be
    starting on a busy host); by worker pid."""
    answers: dict[str, Samples] = {}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        response = httpx.get(f"{url}/metrics", timeout=10)
        assert response.status_code == 200, response.text
        answers[response.headers[WORKER_HEADER]] = Samples.parse(response.text)
        if len(answers) == 2:
            return answers
        time.sleep(0.05)
    raise AssertionError(f"only workers {sorted(answers)} answered scrapes for 120 s")


def stored(samples: Samples) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        key: value
        for key, value in samples.values.items()
        if key[0].removesuffix("_total") in STORED_FIGURES
    }


def test_two_workers_answer_the_same_business_figures_and_sum_their_request_counts(
    offline: Gateway, database_url: str, tmp_path: Path
) -> None:
    seed_products(offline)
    record, secret = offline.clients.add(
        name="metrics-test", kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
    )
    shared = tmp_path / "metrics"
    shared.mkdir()
    (shared / "counter_1.db").write_bytes(b"left over by an earlier run")
    log = tmp_path / "gateway.log"
    with two_workers(database_url, log, shared) as served:
        assert not (shared / "counter_1.db").exists()  # emptied at start
        token = httpx.post(
            f"{served.url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(record.client_id, secret),
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        for n in range(3):
            placed = httpx.post(
                f"{served.url}/process/v1/orders", json=order_payload(f"MW-{n}"), headers=auth
            )
            assert placed.status_code == 201, placed.text
        workers = scrape_each_worker(served.url)
        # Requests on new connections until each worker has answered some of them.
        sent = 0
        while sent < 400:
            answer = httpx.get(f"{served.url}/process/v1/orders/ord_missing_{sent}", headers=auth)
            assert answer.status_code == 404
            sent += 1
            own = [
                worker_counts(shared, pid).value("gateway_http_requests_total", **MISSING_ORDER)
                for pid in workers
            ]
            if sent >= 10 and all(own):
                break
        summed = scrape_each_worker(served.url)

    assert all(own) and sum(own) == sent
    first, second = summed.values()
    assert first.value("gateway_http_requests_total", **MISSING_ORDER) == sent
    assert second.value("gateway_http_requests_total", **MISSING_ORDER) == sent
    assert first.value("gateway_worker_processes") == 2
    assert stored(first) == stored(second)
    assert first.value("gateway_orders", channel="webshop", state="accepted") == 3
    before, _ = workers.values()
    assert stored(before) == stored(first)

    with two_workers(database_url, log, shared) as restarted:
        again = scrape_each_worker(restarted.url)
    after_restart = next(iter(again.values()))
    assert stored(after_restart) == stored(first)
    # Counted figures start again from zero with a new run.
    assert after_restart.value("gateway_http_requests_total", **MISSING_ORDER) == 0
