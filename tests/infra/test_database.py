"""The gateway's store: SQLite tuned for one writer at a time; column types that lose nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Connection, Integer, MetaData, Table, insert, select
from sqlalchemy.exc import StatementError

from gateway_infra.columns import MoneyAmount, UtcDateTime
from gateway_infra.database import Database, normalise_url
from gateway_infra.tables import timers

type_checks = MetaData()
samples = Table(
    "test_column_samples",
    type_checks,
    Column("id", Integer, primary_key=True),
    Column("amount", MoneyAmount(), nullable=True),
    Column("at", UtcDateTime(), nullable=True),
)


@pytest.fixture
def sample_table(database: Database) -> Iterator[Table]:
    database.run_write(lambda conn: type_checks.create_all(conn))
    yield samples
    database.run_write(lambda conn: type_checks.drop_all(conn))


def sqlite_path(database: Database) -> str:
    path = database.url.database
    assert path is not None
    return path


def pragma(database: Database, name: str) -> object:
    return database.run_read(lambda conn: conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())


# --- SQLite set-up ----------------------------------------------------------------------------


def test_sqlite_databases_use_the_wal_journal(sqlite_database: Database) -> None:
    database = sqlite_database

    assert str(pragma(database, "journal_mode")).lower() == "wal"


def test_sqlite_connections_wait_for_a_busy_database_instead_of_failing_at_once(
    sqlite_database: Database,
) -> None:
    database = sqlite_database

    assert pragma(database, "busy_timeout") == 5000


def test_the_sqlite_busy_timeout_can_be_configured(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'busy.db'}", busy_timeout_ms=1234)
    try:
        assert pragma(database, "busy_timeout") == 1234
    finally:
        database.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_database: Database) -> None:
    database = sqlite_database

    assert pragma(database, "foreign_keys") == 1


def try_to_take_the_write_lock(path: str) -> str | None:
    """From a second, raw connection: None when it got the write lock, else SQLite's error."""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return str(exc)
    finally:
        other.close()
    return None


def test_a_write_transaction_holds_the_sqlite_write_lock_from_its_first_statement(
    sqlite_database: Database,
) -> None:
    database = sqlite_database
    path = sqlite_path(database)

    inside = database.run_write(lambda conn: try_to_take_the_write_lock(path))

    assert inside == "database is locked"
    assert try_to_take_the_write_lock(path) is None


def test_a_read_transaction_does_not_hold_the_sqlite_write_lock(sqlite_database: Database) -> None:
    database = sqlite_database
    path = sqlite_path(database)

    def read_then_try(conn: Connection) -> str | None:
        conn.execute(select(timers.c.id)).all()
        return try_to_take_the_write_lock(path)

    assert database.run_read(read_then_try) is None


def test_an_in_memory_sqlite_database_keeps_its_data_between_transactions() -> None:
    database = Database("sqlite://")
    try:
        assert database.is_sqlite
        assert database.is_memory
        database.run_write(lambda conn: conn.exec_driver_sql("CREATE TABLE t (n INTEGER)"))
        database.run_write(lambda conn: conn.exec_driver_sql("INSERT INTO t VALUES (7)"))

        stored = database.run_read(
            lambda conn: conn.exec_driver_sql("SELECT n FROM t").scalar_one()
        )
        assert stored == 7
    finally:
        database.dispose()


# --- transactions -----------------------------------------------------------------------------


class Boom(Exception):
    pass


def count_samples(conn: Connection) -> int:
    return len(conn.execute(select(samples.c.id)).all())


def test_run_write_commits_and_returns_the_callbacks_result(
    database: Database, sample_table: Table
) -> None:
    def add(conn: Connection) -> str:
        conn.execute(insert(sample_table).values(id=1))
        return "done"

    assert database.run_write(add) == "done"
    assert database.run_read(count_samples) == 1


def test_run_write_rolls_back_everything_when_the_callback_raises(
    database: Database, sample_table: Table
) -> None:
    def add_then_fail(conn: Connection) -> None:
        conn.execute(insert(sample_table).values(id=1))
        conn.execute(insert(sample_table).values(id=2))
        raise Boom

    with pytest.raises(Boom):
        database.run_write(add_then_fail)

    assert database.run_read(count_samples) == 0


async def test_write_and_read_run_the_transaction_off_the_event_loop(
    database: Database, sample_table: Table
) -> None:
    await database.write(lambda conn: conn.execute(insert(sample_table).values(id=1)))

    assert await database.read(count_samples) == 1


# --- column types -----------------------------------------------------------------------------


def test_a_naive_datetime_is_refused_by_a_utc_datetime_column(
    database: Database, sample_table: Table
) -> None:
    naive = datetime(2026, 1, 1, 12, 0)

    with pytest.raises(StatementError, match="naive datetimes are not stored") as caught:
        database.run_write(lambda conn: conn.execute(insert(sample_table).values(id=1, at=naive)))

    assert isinstance(caught.value.orig, ValueError)
    assert database.run_read(count_samples) == 0


def test_an_aware_datetime_comes_back_as_the_same_instant_in_utc(
    database: Database, sample_table: Table
) -> None:
    berlin_winter = timezone(timedelta(hours=1))
    at = datetime(2026, 1, 1, 13, 30, 0, 123456, tzinfo=berlin_winter)

    database.run_write(lambda conn: conn.execute(insert(sample_table).values(id=1, at=at)))
    stored = database.run_read(lambda conn: conn.execute(select(sample_table.c.at)).scalar_one())

    assert stored == datetime(2026, 1, 1, 12, 30, 0, 123456, tzinfo=UTC)
    assert stored.utcoffset() == timedelta(0)


def test_utc_datetime_columns_compare_instants_correctly_in_queries(
    database: Database, sample_table: Table
) -> None:
    base = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    rows = [{"id": n, "at": base + timedelta(minutes=n)} for n in range(1, 4)]
    database.run_write(lambda conn: conn.execute(insert(sample_table), rows))

    def due_by(conn: Connection) -> list[int]:
        cutoff = base + timedelta(minutes=2)
        query = select(sample_table.c.id).where(sample_table.c.at <= cutoff)
        return list(conn.execute(query.order_by(sample_table.c.id)).scalars())

    assert database.run_read(due_by) == [1, 2]


def test_a_money_amount_keeps_a_decimal_sum_exact_through_a_round_trip(
    database: Database, sample_table: Table
) -> None:
    amount = Decimal("0.1") + Decimal("0.2")

    database.run_write(lambda conn: conn.execute(insert(sample_table).values(id=1, amount=amount)))
    stored = database.run_read(
        lambda conn: conn.execute(select(sample_table.c.amount)).scalar_one()
    )

    assert isinstance(stored, Decimal)
    assert stored == Decimal("0.3")


def test_money_amounts_keep_four_decimal_places(database: Database, sample_table: Table) -> None:
    amount = Decimal("12345678901234.5678")

    database.run_write(lambda conn: conn.execute(insert(sample_table).values(id=1, amount=amount)))
    stored = database.run_read(
        lambda conn: conn.execute(select(sample_table.c.amount)).scalar_one()
    )

    assert stored == amount


def test_a_missing_money_amount_stays_missing(database: Database, sample_table: Table) -> None:
    database.run_write(lambda conn: conn.execute(insert(sample_table).values(id=1)))

    row = database.run_read(lambda conn: conn.execute(select(sample_table)).one())

    assert (row.amount, row.at) == (None, None)


# --- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "drivername", "database"),
    [
        ("sqlite:///var/gateway.db", "sqlite+pysqlite", "var/gateway.db"),
        ("sqlite:////srv/gateway/gateway.db", "sqlite+pysqlite", "/srv/gateway/gateway.db"),
        ("sqlite://", "sqlite+pysqlite", None),
        ("sqlite+aiosqlite:///var/gateway.db", "sqlite+pysqlite", "var/gateway.db"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql+psycopg", "test"),
        ("postgres://postgres@127.0.0.1:5432/test", "postgresql+psycopg", "test"),
        ("postgresql+psycopg2://postgres@127.0.0.1/test", "postgresql+psycopg", "test"),
        ("postgresql+asyncpg://postgres@127.0.0.1/test", "postgresql+psycopg", "test"),
    ],
)
def test_normalise_url_selects_the_synchronous_driver_of_the_backend(
    url: str, drivername: str, database: str | None
) -> None:
    normalised = normalise_url(url)

    assert normalised.drivername == drivername
    assert normalised.database == database


def test_normalise_url_keeps_credentials_host_port_and_query() -> None:
    url = "postgresql://gw:s3cret@db.internal:6543/gateway?options=-csearch_path%3Dt_1"

    normalised = normalise_url(url)

    assert normalised.username == "gw"
    assert normalised.password == "s3cret"
    assert (normalised.host, normalised.port) == ("db.internal", 6543)
    assert normalised.query == {"options": "-csearch_path=t_1"}


@pytest.mark.parametrize("url", ["mysql://root@localhost/gateway", "oracle://scott@db/orcl"])
def test_normalise_url_refuses_backends_the_gateway_does_not_support(url: str) -> None:
    with pytest.raises(ValueError, match="unsupported database backend"):
        normalise_url(url)
