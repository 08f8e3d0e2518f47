"""Fixtures of the inventory tests: a Store on the test's own database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway_infra.clock import ManualClock
from gateway_infra.database import Database
from gateway_infra.unit_of_work import Store


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def store(database: Database, clock: ManualClock) -> Store:
    return Store(database, clock)
