"""Fixtures for the `tryton` group: a real Tryton server on a copy of a cached, seeded template.

The Tryton venv and the template live under .cache/tryton/ (see harness.py). Without network
access to PyPI the first install fails: the tests are then skipped with a hint, or fail under
CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_or_fail
from tests.tryton.harness import (
    TrytonRpc,
    TrytonServer,
    TrytonSetupError,
    build_template_database,
    ensure_tryton_venv,
    load_manifest,
)


@dataclass(frozen=True)
class TrytonTemplate:
    venv: Path
    database: Path
    manifest: dict[str, Any]


@pytest.fixture(scope="session")
def tryton_template(tmp_path_factory: pytest.TempPathFactory) -> TrytonTemplate:
    """The Tryton venv and the seeded template database (built once, then reused from cache)."""
    try:
        venv = ensure_tryton_venv()
    except TrytonSetupError as exc:
        skip_or_fail(
            "could not install Tryton into its own venv under .cache/tryton/ (is PyPI "
            "reachable?). Hint: `python -m venv /tmp/t && /tmp/t/bin/pip install -r "
            f"tests/tryton/requirements.txt` must work on this machine. Details: {exc}"
        )
        raise  # not reached: skip_or_fail raises
    try:
        database = build_template_database(venv, tmp_path_factory.mktemp("tryton-build"))
    except TrytonSetupError as exc:
        pytest.fail(f"building the Tryton template database failed: {exc}")
    return TrytonTemplate(venv=venv, database=database, manifest=load_manifest(database))


def _serve(template: TrytonTemplate, workdir: Path) -> Iterator[TrytonServer]:
    with TrytonServer(template.venv, template.database, workdir) as server:
        yield server


@pytest.fixture(scope="module")
def tryton_server(
    tryton_template: TrytonTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrytonServer]:
    """A Tryton server on its own copy of the template, shared by the tests of one module.

    A test may stop() and start() it (same port, same database) but must leave it running.
    """
    yield from _serve(tryton_template, tmp_path_factory.mktemp("tryton"))


@pytest.fixture
def isolated_tryton_server(
    tryton_template: TrytonTemplate, tmp_path: Path
) -> Iterator[TrytonServer]:
    """A Tryton server on a fresh copy of the template for this test alone (~2-5 s to start)."""
    yield from _serve(tryton_template, tmp_path / "tryton")


@pytest.fixture
def tryton_rpc(tryton_server: TrytonServer) -> Iterator[TrytonRpc]:
    """The test's own JSON-RPC session on the module's server, logged in as admin."""
    with TrytonRpc(tryton_server.url, tryton_server.database) as rpc:
        yield rpc.login(tryton_server.admin_login, tryton_server.admin_password)
