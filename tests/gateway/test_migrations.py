"""The migrations build exactly the schema the table definitions describe."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, Integer, MetaData, String, column, insert, inspect, select

from contracts import EventEnvelope
from gateway import ALL_METADATA
from gateway_infra import schema_migrations
from gateway_infra.columns import UtcDateTime
from gateway_infra.database import Database
from gateway_infra.outbox import ENVELOPE_COLUMNS, envelope_of
from gateway_infra.tables import outbox
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


def test_sqlite_tables_keep_their_rows_as_the_definitions_say(tmp_path: Path) -> None:
    """WITHOUT ROWID where a table says so (compare_metadata does not compare table options)."""
    url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(url)
    database = Database(url)
    try:
        inspector = inspect(database.engine)
        stored = {
            name: inspector.get_table_options(name).get("sqlite_with_rowid", True)
            for name in every_table().tables
        }
    finally:
        database.dispose()

    assert stored == {
        name: table.dialect_options["sqlite"]["with_rowid"]
        for name, table in every_table().tables.items()
    }
    assert stored["proc_published_availability"] is False


def _migrate_to(database: Database, revision: str) -> None:
    config = schema_migrations.alembic_config()
    with database.engine.begin() as conn:
        config.attributes["connection"] = conn
        if revision == "heads":
            command.upgrade(config, revision)
        else:
            command.downgrade(config, revision)


_OLD_OUTBOX = sa.table(
    "infra_outbox",
    column("id", Integer),
    column("event_id", String),
    column("type", String),
    column("version", Integer),
    column("source", String),
    column("subject", String),
    column("channel", String),
    column("correlation_id", String),
    column("causation_id", String),
    column("order_id", String),
    column("origin_correlation_id", String),
    column("occurred_at", UtcDateTime()),
    column("envelope", JSON),
    column("position", Integer),
)


def _events() -> list[EventEnvelope]:
    return [
        EventEnvelope(
            type="order.accepted",
            occurred_at=datetime(2026, 11, 28, 1, 2, 3, tzinfo=UTC),
            correlation_id="req-1",
            causation_id="req-0",
            origin_correlation_id="req-origin",
            source="process_api.orders",
            subject="order/ord_1",
            channel="webshop",
            data={"order_id": "ord_1", "note": 'Grüße, "quoted" \\ text', "lines": [1, 2.5]},
        ),
        EventEnvelope(
            type="availability.changed",
            occurred_at=datetime(2026, 11, 28, 1, 2, 3, 120000, tzinfo=UTC),
            source="process_api.inventory",
            subject="availability/nordic/MUG",
            channel="nordic",
            data={"sku": "MUG", "channel": "nordic", "quantity": 4, "previous": None},
        ),
        EventEnvelope(
            type="inventory.shortfall",
            occurred_at=datetime(2026, 11, 28, 1, 2, 3, 1, tzinfo=UTC),
            correlation_id="req-2",
            causation_id="req-2",
            source="process_api.inventory",
            subject="inventory/MUG",
            data={},
        ),
    ]


_PUBLISHED = sa.table(
    "proc_published_availability",
    column("channel", String),
    column("sku", String),
    column("quantity", Integer),
    column("published_at", UtcDateTime()),
    column("event_id", String),
    column("confirmed_at", UtcDateTime()),
)


def _published_values(database: Database) -> list[tuple[object, ...]]:
    with database.engine.connect() as conn:
        query = select(_PUBLISHED).order_by(_PUBLISHED.c.channel, _PUBLISHED.c.sku)
        return [tuple(row) for row in conn.execute(query)]


def test_the_slimmer_publication_rows_migration_keeps_every_event_and_value_both_ways(
    database_url: str,
) -> None:
    database = Database(database_url)
    try:
        _migrate_to(database, "0018")
        events = _events()
        expected = [event.model_dump(mode="json") for event in events]
        with database.engine.begin() as conn:
            conn.execute(
                insert(_OLD_OUTBOX),
                [
                    {
                        "event_id": str(event.id),
                        **event.model_dump(
                            include={
                                *("type", "version", "source", "subject", "channel"),
                                *("correlation_id", "causation_id", "origin_correlation_id"),
                                "occurred_at",
                            }
                        ),
                        "order_id": "ord_1" if n == 0 else None,
                        "envelope": envelope,
                        "position": n + 1 if n < 2 else None,
                    }
                    for n, (event, envelope) in enumerate(zip(events, expected, strict=True))
                ],
            )

        sent = datetime(2026, 11, 28, 1, 2, 3, 4, tzinfo=UTC)
        values = [
            ("nordic", "MUG", 4, sent, str(events[1].id), None),
            ("webshop", "MUG", 0, sent, str(events[0].id), sent),
            ("webshop", "PLATE", 12, sent, str(events[2].id), None),
        ]
        with database.engine.begin() as conn:
            names = _PUBLISHED.c.keys()
            conn.execute(insert(_PUBLISHED), [dict(zip(names, v, strict=True)) for v in values])

        _migrate_to(database, "heads")
        assert _published_values(database) == values
        with database.engine.connect() as conn:
            rows = conn.execute(select(*ENVELOPE_COLUMNS).order_by(outbox.c.id)).all()
        rebuilt = [envelope_of(row) for row in rows]
        assert rebuilt == expected
        assert [list(envelope or {}) for envelope in rebuilt] == [list(e) for e in expected]

        _migrate_to(database, "0018")
        with database.engine.connect() as conn:
            stored = [
                row.envelope
                for row in conn.execute(select(_OLD_OUTBOX.c.envelope).order_by(_OLD_OUTBOX.c.id))
            ]
        assert stored == expected
        assert [list(envelope) for envelope in stored] == [list(e) for e in expected]
        assert _published_values(database) == values
        _migrate_to(database, "heads")
    finally:
        database.dispose()
