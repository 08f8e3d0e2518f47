"""Fixtures shared by the whole suite: isolated databases, a moved clock, wired gateways.

Database tests run on SQLite, and again on PostgreSQL when TEST_DATABASE_URL is set (each test in
a schema of its own, in a database of the test process: tests/databases.py). A group whose real
service is missing is skipped with a hint, except under CI=true, where that skip is a failure.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gateway import Gateway, build_app, build_gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PROCESS_SCOPES, SYSTEM_SCOPES
from gateway_infra.clock import Clock, ManualClock
from gateway_infra.settings import Settings
from tests.contract import reporting as contract_reporting
from tests.databases import PostgresSchemas, SqliteTemplate, Unavailable
from tests.databases import migrate as migrate  # what tests of the migrations run


def pytest_configure(config: pytest.Config) -> None:
    """Tests configure the gateway explicitly: the developer's own settings must not leak in."""
    for name in list(os.environ):
        if name.startswith("GATEWAY_") or name in ("DATABASE_URL", "REDIS_URL"):
            del os.environ[name]


def skip_or_fail(reason: str) -> None:
    """Skip with a hint on a developer's machine; fail under CI, where nothing may be skipped."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and a required service is missing: {reason}")
    pytest.skip(reason)


SQLITE_TEMPLATE = SqliteTemplate()
_postgres: dict[str, PostgresSchemas] = {}


def postgres_schemas() -> PostgresSchemas:
    """This test process's PostgreSQL database for tests (skip or fail when there is none)."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        skip_or_fail(
            "PostgreSQL tests need TEST_DATABASE_URL, e.g. "
            "TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test"
        )
    assert base is not None
    if base not in _postgres:
        try:
            _postgres[base] = PostgresSchemas(base)
        except Unavailable as exc:
            skip_or_fail(str(exc))
    return _postgres[base]


def pytest_sessionfinish() -> None:
    SQLITE_TEMPLATE.close()
    while _postgres:
        _postgres.popitem()[1].close()


def migrated_sqlite(path: Path) -> str:
    """A migrated SQLite database at path (a copy of this process's template); its URL."""
    return SQLITE_TEMPLATE.copy_to(path)


@contextlib.contextmanager
def provisioned_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A migrated database for one test, equal to a freshly migrated one (tests/databases.py):
    a SQLite file, or a PostgreSQL schema."""
    if kind == "sqlite":
        yield migrated_sqlite(tmp_path / "gateway.db")
        return
    with postgres_schemas().migrated() as url:
        yield url


@contextlib.contextmanager
def empty_database(kind: str, tmp_path: Path) -> Iterator[str]:
    """A database without tables, for tests of the migrations: a new SQLite file, or a
    PostgreSQL schema."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with postgres_schemas().empty() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each database test runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is set."""
    with provisioned_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "log_json": True,
        "scheduler_enabled": False,
        "key_encryption_key": TEST_ENVIRONMENT["GATEWAY_KEY_ENCRYPTION_KEY"],
        # Tests drive many requests per client; limits have tests of their own.
        "throttle_tiers": {"standard": {"burst": 10_000, "sustained": 100_000}},
        "token_endpoint_throttle": {"burst": 10_000, "sustained": 100_000},
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


def start_gateway(settings: Settings, clock: Clock) -> Gateway:
    """A wired gateway with its signing keys in place (as `retail-gateway migrate` leaves it)."""
    built = build_gateway(settings, clock=clock)
    built.keys.ensure()
    return built


@pytest.fixture
async def gateway(settings: Settings, clock: ManualClock) -> AsyncIterator[Gateway]:
    built = start_gateway(settings, clock)
    yield built
    await built.aclose()


@pytest.fixture
def app(gateway: Gateway) -> FastAPI:
    return build_app(gateway, run_background=False)


BASE_URL = "http://127.0.0.1:8000"  # the default issuer; tokens are minted for it


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A caller without credentials."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        yield c


INTERNAL_SCOPES = frozenset(PROCESS_SCOPES) | frozenset(SYSTEM_SCOPES)


async def fetch_token(
    http: httpx.AsyncClient, client_id: str, secret: str, scope: str | None = None
) -> str:
    """A real access token from the real token endpoint (client_secret_basic)."""
    form = {"grant_type": "client_credentials"}
    if scope:
        form["scope"] = scope
    response = await http.post("/oauth/token", data=form, auth=(client_id, secret))
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def register_and_authorize(
    gateway: Gateway,
    http: httpx.AsyncClient,
    *,
    kind: ClientKind,
    scopes: frozenset[str],
    channel: str | None = None,
    tier: str = "standard",
) -> tuple[str, dict[str, str]]:
    """Register a client, get its token, and return (client_id, Authorization header)."""
    record, secret = gateway.clients.add(
        name=f"test-{kind.value}-{channel or 'internal'}",
        kind=kind,
        scopes=scopes,
        channel=channel,
        throttle_tier=tier,
    )
    token = await fetch_token(http, record.client_id, secret)
    return record.client_id, {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def client(gateway: Gateway, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An internal application holding every process and system scope."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as c:
        _, headers = await register_and_authorize(
            gateway, c, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
        )
        c.headers.update(headers)
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class UvicornThread:
    """A real uvicorn server on a loopback port, in a thread of the test process."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> UvicornThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


# ---------------------------------------------------------------- time per test group

GROUPS = ("postgres", "redis", "tryton", "browser", "contract", "crash", "amazon", "slow")
_group_seconds: dict[str, float] = {}
_group_counts: dict[str, int] = {}


def _group_of(item: pytest.Item) -> str:
    for group in GROUPS:
        if item.get_closest_marker(group) is not None:
            return group
    return "core"


_conformance: dict[str, dict[str, int]] = {}
CONFORMANCE_BACKENDS = ("embedded-sqlite", "embedded-postgres", "tryton")


def _conformance_backend(nodeid: str) -> str | None:
    if "tests/system/conformance/" not in nodeid or "[" not in nodeid:
        return None
    param_id = nodeid.rsplit("[", 1)[1]
    return next((b for b in CONFORMANCE_BACKENDS if b in param_id), None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    contract_reporting.collect(report)
    backend = _conformance_backend(report.nodeid)
    if backend is not None and (report.when == "call" or report.outcome != "passed"):
        outcomes = _conformance.setdefault(backend, {})
        outcome = "error" if report.when != "call" and report.failed else report.outcome
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    # Under pytest-xdist only the workers collect: the report's keywords carry the markers.
    group = _group_by_nodeid.get(report.nodeid) or next(
        (g for g in GROUPS if g in report.keywords), "core"
    )
    _group_seconds[group] = _group_seconds.get(group, 0.0) + report.duration
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _group_counts[group] = _group_counts.get(group, 0) + 1


_group_by_nodeid: dict[str, str] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        _group_by_nodeid[item.nodeid] = _group_of(item)
        if item.get_closest_marker("tryton") is not None:
            # One worker runs every Tryton test: they share one cached ERP environment and server.
            item.add_marker(pytest.mark.xdist_group("tryton"))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    contract_reporting.summarize(terminalreporter)
    if _conformance:
        terminalreporter.section("system API conformance suite per backend")
        for backend in CONFORMANCE_BACKENDS:
            if backend in _conformance:
                counts = ", ".join(f"{n} {k}" for k, n in sorted(_conformance[backend].items()))
                terminalreporter.write_line(f"{backend:<18} {counts}")
    if not _group_seconds:
        return
    terminalreporter.section("time per test group")
    for group in sorted(_group_seconds, key=lambda g: -_group_seconds[g]):
        terminalreporter.write_line(
            f"{group:<10} {_group_counts.get(group, 0):>5} tests {_group_seconds[group]:>8.1f} s"
        )


# ---------------------------------------------------------------- a real gateway process

TEST_ENVIRONMENT = {
    "GATEWAY_KEY_ENCRYPTION_KEY": "test-key-encryption-secret-of-32-characters-or-more",
    "GATEWAY_LOG_LEVEL": "WARNING",
}


class GatewayProcess:
    """`retail-gateway serve` as its own OS process (uvicorn), on a free loopback port."""

    def __init__(self, database_url: str, log_path: Path, *, workers: int = 1, **env: str):
        # Seconds to answer: about 1.5 s on an idle host, but start-up imports every app, and
        # the suite runs on every core beside it (under a load average of 5 to 12, 30 s were
        # once not enough); several workers mean several interpreters starting at once.
        self.start_timeout = 90.0 if workers == 1 else 120.0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            **TEST_ENVIRONMENT,
            "DATABASE_URL": database_url,
            "GATEWAY_PORT": str(self.port),
            "GATEWAY_WORKERS": str(workers),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> GatewayProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.__exit__()  # not left running after the test
        raise RuntimeError(
            f"gateway did not answer in {self.start_timeout:g} s: "
            f"{self.log_path.read_text()[-2000:]}"
        )

    def kill(self) -> None:
        """SIGKILL: the process dies at once, mid-request, mid-transaction, mid-delivery."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
