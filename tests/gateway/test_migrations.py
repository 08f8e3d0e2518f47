"""The migrations build exactly the schema the table definitions describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData

from gateway import ALL_METADATA
from gateway_infra.database import Database
from tests.conftest import migrate


def every_table() -> MetaData:
    merged = MetaData()
    for metadata in ALL_METADATA:
        for table in metadata.tables.values():
            table.to_metadata(merged)
    return merged


def test_the_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    migrate(database_url)
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"render_as_batch": conn.dialect.name == "sqlite"}
            )
            differences = compare_metadata(context, every_table())
    finally:
        database.dispose()

    assert differences == []
