"""Fixtures of the infrastructure tests: a Database and a Store on the test's own database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway_infra.clock import ManualClock
from gateway_infra.database import Database
from gateway_infra.unit_of_work import Store
from tests.conftest import migrated_sqlite


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def store(database: Database, clock: ManualClock) -> Store:
    return Store(database, clock)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[Database]:
    """For behaviour only SQLite has (PRAGMAs, BEGIN IMMEDIATE): never a PostgreSQL run."""
    db = Database(migrated_sqlite(tmp_path / "sqlite-only.db"))
    yield db
    db.dispose()
