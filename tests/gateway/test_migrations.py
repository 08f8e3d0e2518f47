"""The migrations build exactly the schema the table definitions describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway import ALL_METADATA
from gateway_infra.database import Database
from tests.conftest import migrate


def test_the_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    migrate(database_url)
    database = Database(database_url)
    try:
        with database.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"render_as_batch": conn.dialect.name == "sqlite"}
            )
            differences = compare_metadata(context, list(ALL_METADATA))
    finally:
        database.dispose()

    assert differences == []
