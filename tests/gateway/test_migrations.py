"""The migrations build exactly the schema the table definitions describe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from gateway import ALL_METADATA
from gateway_infra.database import Database
from tests.conftest import empty_database, migrate


def every_table() -> MetaData:
    merged = MetaData()
    for metadata in ALL_METADATA:
        for table in metadata.tables.values():
            table.to_metadata(merged)
    return merged


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with empty_database(request.param, tmp_path) as url:
        yield url


def test_the_migrated_schema_matches_the_table_definitions(empty_database_url: str) -> None:
    migrate(empty_database_url)
    database = Database(empty_database_url)
    try:
        with database.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"render_as_batch": conn.dialect.name == "sqlite"}
            )
            differences = compare_metadata(context, every_table())
    finally:
        database.dispose()

    assert differences == []
