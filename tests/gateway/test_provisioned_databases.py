"""Every test gets a database equal to a freshly migrated one, though the migrations run once per
test process (tests/databases.py): on SQLite a copy of a migrated file, on PostgreSQL a schema
that earlier tests may have used and that was reset since."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, insert, inspect, make_url, text, update
from sqlalchemy.pool import NullPool

from contracts import OrderSubmission
from gateway_infra.clock import ManualClock
from gateway_infra.database import Database, normalise_url
from gateway_infra.tables import timers
from process_api.tables import price_book_versions, price_books, price_entries
from tests.conftest import (
    empty_database,
    make_settings,
    migrate,
    provisioned_database,
    start_gateway,
)
from tests.databases import PostgresSchemas
from tests.factories import order_payload, seed_products


def _plain(value: Any) -> Any:
    """Inspector results with their SQLAlchemy objects (types, clauses) as SQL text, comparable."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _by_name(items: list[Any]) -> list[Any]:
    return sorted(_plain(items), key=lambda item: str(item.get("name")))


def _postgresql_state(conn: Connection) -> dict[str, Any]:
    """What the inspector does not show: triggers, functions, sequences, the size of each table's
    file, the planner's figures and statistics."""
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()

    def rows(sql: str) -> list[list[str]]:
        return sorted(
            [str(value).replace(f"{schema}.", "") for value in row]
            for row in conn.execute(text(sql)).all()
        )

    return {
        "triggers": rows(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal "
            "AND tgrelid IN (SELECT oid FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace)"
        ),
        "functions": rows(
            "SELECT pg_get_functiondef(oid) FROM pg_proc "
            "WHERE pronamespace = current_schema()::regnamespace"
        ),
        "sequences": rows(
            "SELECT sequencename, data_type, start_value, increment_by, last_value "
            "FROM pg_sequences WHERE schemaname = current_schema()"
        ),
        "table files": rows(
            "SELECT relname, pg_relation_size(oid) FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r'"
        ),
        "planner figures": rows(
            "SELECT relname, relpages, reltuples, relallvisible FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'i')"
        ),
        "statistics": rows(
            "SELECT count(*) FROM pg_statistic "
            "WHERE starelid IN (SELECT oid FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace)"
        ),
    }


def _sqlite_state(conn: Connection) -> dict[str, Any]:
    master = conn.exec_driver_sql("SELECT type, name, tbl_name, sql FROM sqlite_master").all()
    pragmas = ("user_version", "application_id", "page_size", "auto_vacuum", "encoding")
    return {
        "sqlite_master": sorted(tuple(row) for row in master),
        "pragmas": {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in pragmas},
    }


def describe(url: str) -> dict[str, Any]:
    """The database's schema, every row of every table, and what else a fresh database has."""
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            inspector = inspect(conn)
            tables = sorted(inspector.get_table_names())
            described: dict[str, Any] = {
                table: {
                    "columns": _plain(inspector.get_columns(table)),
                    "primary key": _plain(inspector.get_pk_constraint(table)),
                    "foreign keys": _by_name(inspector.get_foreign_keys(table)),
                    "indexes": _by_name(inspector.get_indexes(table)),
                    "unique": _by_name(inspector.get_unique_constraints(table)),
                    "checks": _by_name(inspector.get_check_constraints(table)),
                    "rows": sorted(
                        repr(tuple(row))
                        for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"')  # noqa: S608
                    ),
                }
                for table in tables
            }
            described["-"] = _sqlite_state(conn) if database.is_sqlite else _postgresql_state(conn)
            return described
    finally:
        database.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kind(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


def test_a_provisioned_database_equals_a_freshly_migrated_one(kind: str, tmp_path: Path) -> None:
    with (
        empty_database(kind, tmp_path) as fresh,
        provisioned_database(kind, tmp_path / "provisioned") as provisioned,
    ):
        migrate(fresh)

        assert describe(provisioned) == describe(fresh)


def _table_id(url: str) -> int:
    """The PostgreSQL object id of the schema's orders table: the same for the same schema."""
    database = Database(url)
    try:
        oid: int = database.run_read(
            lambda conn: conn.execute(text("SELECT 'proc_orders'::regclass::oid")).scalar_one()
        )
        return oid
    finally:
        database.dispose()


async def _write_to_many_tables(url: str) -> None:
    """What tests leave behind: orders and their events, keys, a published price book (which
    triggers protect), a value stored out of line, statistics, used sequences, and no record of
    the migrations."""
    gateway = start_gateway(make_settings(url), ManualClock())
    try:
        seed_products(gateway)
        await gateway.orders.submit(
            OrderSubmission.model_validate(order_payload("WRITTEN-1")), actor="test"
        )
    finally:
        await gateway.aclose()
    now = ManualClock().now()
    book = {"book_id": "book-1", "version": 1}

    def write(conn: Connection) -> None:
        conn.execute(
            insert(price_books).values(
                book_id="book-1", channel="webshop", currency="EUR", created_at=now, created_by="t"
            )
        )
        conn.execute(
            insert(price_book_versions).values(
                **book, status="draft", draft_key="book-1", created_at=now, created_by="t"
            )
        )
        conn.execute(
            insert(price_entries).values(
                **book, sku="MUG-RED-350", base_price="12.90", base_price_read_at=now
            )
        )
        conn.execute(
            update(price_book_versions)
            .where(price_book_versions.c.book_id == "book-1")
            .values(status="published", draft_key=None, published_at=now, published_by="t")
        )
        conn.execute(
            insert(timers).values(
                kind="k", key="k", due_at=now, payload={}, created_at=now,
                last_error=os.urandom(40_000).hex(),
            )
        )  # fmt: skip
        conn.execute(text("DELETE FROM alembic_version"))
        conn.execute(text("SELECT nextval('proc_price_publications_id_seq')"))

    database = Database(url)
    try:
        database.run_write(write)
        database.run_write(lambda conn: conn.execute(text("ANALYZE proc_orders")))
    finally:
        database.dispose()


@pytest.mark.postgres
async def test_a_schema_a_test_wrote_to_is_handed_out_again_equal_to_a_fresh_one(
    tmp_path: Path,
) -> None:
    with provisioned_database("postgres", tmp_path) as first:
        await _write_to_many_tables(first)
        used = _table_id(first)

    with (
        provisioned_database("postgres", tmp_path) as second,
        empty_database("postgres", tmp_path) as fresh,
    ):
        migrate(fresh)

        assert _table_id(second) == used
        assert describe(second) == describe(fresh)


@pytest.mark.postgres
def test_a_schema_a_test_changed_is_dropped_not_handed_out_again(tmp_path: Path) -> None:
    with provisioned_database("postgres", tmp_path) as first:
        database = Database(first)
        try:
            database.run_write(lambda conn: conn.execute(text("CREATE TABLE extra (n integer)")))
        finally:
            database.dispose()

    with provisioned_database("postgres", tmp_path) as second:
        database = Database(second)
        try:
            # pg_tables lists the tables of every schema in the database of the test process.
            extra = database.run_read(
                lambda conn: conn.execute(
                    text("SELECT count(*) FROM pg_tables WHERE tablename = 'extra'")
                ).scalar_one()
            )
        finally:
            database.dispose()

        assert extra == 0


def _test_databases(base_url: str) -> set[str]:
    server = create_engine(normalise_url(base_url), poolclass=NullPool)
    try:
        with server.connect() as conn:
            return set(
                conn.execute(
                    text(
                        "SELECT datname FROM pg_database"
                        " WHERE starts_with(datname, 'gateway_tests_')"
                    )
                ).scalars()
            )
    finally:
        server.dispose()


def _die(run: PostgresSchemas, base_url: str) -> None:
    """End every session of a test run as the server sees a killed process end them: its lock
    goes and nobody is connected to its database any more (waiting until the server is done)."""
    owner = run._owner.execute(text("SELECT pg_backend_pid()")).scalar_one()
    run._engine.dispose()
    server = create_engine(normalise_url(base_url), poolclass=NullPool)
    try:
        with server.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                    " WHERE datname = :database OR pid = :owner"
                ),
                {"database": run.database, "owner": owner},
            )
    finally:
        server.dispose()
        run._server.dispose()


@pytest.mark.postgres
def test_a_later_run_drops_the_database_of_a_run_that_died_but_not_of_one_still_running() -> None:
    base_url = os.environ["TEST_DATABASE_URL"]
    # A run on another database of the same server sees other runs' locks as free: what keeps
    # their databases is that they stay connected to them.
    elsewhere = make_url(base_url).set(database="postgres").render_as_string(hide_password=False)
    running = PostgresSchemas(base_url)
    try:
        died = PostgresSchemas(base_url)
        _die(died, base_url)
        later = PostgresSchemas(elsewhere)
        try:
            databases = _test_databases(base_url)
        finally:
            later.close()

        assert running.database in databases
        assert later.database in databases
        assert died.database not in databases
    finally:
        running.close()
