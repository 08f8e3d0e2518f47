"""The gateway's own store: one SQLAlchemy engine, and transactions that cost one thread hop each.

A unit of work is a plain synchronous function run whole in a worker thread: every statement in it
runs without returning to the event loop (docs/decisions/0002-one-thread-hop-per-transaction.md).
SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE for writes; PostgreSQL is selected by URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread
from sqlalchemy import Connection, Engine, Select, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

T = TypeVar("T")
P = ParamSpec("P")


def normalise_url(url: str) -> URL:
    """Map the URLs people write to the synchronous drivers the gateway uses."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+pysqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database backend {backend!r}")


class Database:
    """Runs read and write transactions off the event loop, one thread hop per transaction."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 10) -> None:
        self.url = normalise_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self.is_memory = self.is_sqlite and self.url.database in (None, "", ":memory:")
        self.engine = self._create_engine(busy_timeout_ms, pool_size)
        # SQLite has one writer at a time; queueing writers here avoids its sleeping busy handler.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self.limiter = anyio.CapacityLimiter(pool_size + 2)
        # And they wait for their turn on the event loop, not in worker threads: writers blocked
        # on the lock kept a dozen threads contending for the interpreter lock under load.
        self.write_limiter = anyio.CapacityLimiter(1) if self.is_sqlite else self.limiter
        self._generation_lock = threading.Lock()
        self._write_generation = 0

    @property
    def write_generation(self) -> int:
        """Moves on after every write transaction of this process has ended (committed or not).

        A reader that notes it before reading and finds it unchanged later knows no write of this
        process ended in between: what it read is still what this process's writes left.
        """
        return self._write_generation

    def _writes_moved_on(self) -> None:
        with self._generation_lock:
            self._write_generation += 1

    def _create_engine(self, busy_timeout_ms: int, pool_size: int) -> Engine:
        if not self.is_sqlite:
            return create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if self.is_memory:
            kwargs["poolclass"] = StaticPool
        else:
            assert self.url.database is not None
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["pool_size"] = pool_size
            kwargs["max_overflow"] = pool_size
        engine = create_engine(self.url, **kwargs)
        _install_sqlite_recipe(engine, busy_timeout_ms, wal=not self.is_memory)
        return engine

    def run_write(self, fn: Callable[[Connection], T]) -> T:
        """Run fn inside one write transaction on the calling thread; commit unless it raises."""
        lock = self._write_lock
        try:
            if lock is None:
                return self._in_transaction(fn, "IMMEDIATE")
            with lock:
                return self._in_transaction(fn, "IMMEDIATE")
        finally:
            self._writes_moved_on()

    def run_read(self, fn: Callable[[Connection], T]) -> T:
        """Run fn inside one read transaction on the calling thread."""
        return self._in_transaction(fn, "DEFERRED")

    def _in_transaction(self, fn: Callable[[Connection], T], sqlite_begin: str) -> T:
        with self.engine.connect() as conn:
            conn = conn.execution_options(sqlite_begin=sqlite_begin)
            with conn.begin():
                return fn(conn)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run fn as one write transaction in a worker thread (a single hop off the event loop)."""
        return await anyio.to_thread.run_sync(self.run_write, fn, limiter=self.write_limiter)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run fn as one read transaction in a worker thread."""
        return await anyio.to_thread.run_sync(self.run_read, fn, limiter=self.limiter)

    def dispose(self) -> None:
        self.engine.dispose()


def _install_sqlite_recipe(engine: Engine, busy_timeout_ms: int, *, wal: bool) -> None:
    """SQLAlchemy's documented pysqlite recipe: we emit BEGIN ourselves, IMMEDIATE for writers."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE"):
            raise ValueError(f"unknown SQLite begin mode {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


__all__ = ["Database", "normalise_url"]


def for_update(conn: Connection, query: Select[Any]) -> Select[Any]:
    """Row locks on PostgreSQL; SQLite's write transactions (BEGIN IMMEDIATE) are exclusive."""
    return query if conn.dialect.name == "sqlite" else query.with_for_update()


def dialect_insert(conn: Connection, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT clauses (PostgreSQL or SQLite)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
