"""Bulk inserts straight through the driver, for units of work that write many rows at once.

SQLAlchemy's executemany processes every parameter of every row in Python (several microseconds
a row); a publication of 600,000 values spent most of its time there. These helpers hand rows of
driver-ready values to the driver: multi-row INSERTs on SQLite (values shared by every row bound
once per statement), COPY on PostgreSQL. They run on the caller's connection, so the rows commit
or roll back with its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from psycopg.abc import Transformer as TransformerProtocol
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Column, Connection, Table

__all__ = ["driver_value", "insert_rows"]


def driver_value(conn: Connection, column: Column[Any], value: Any) -> Any:
    """value as the column's type hands it to the driver (e.g. a UTC datetime as SQLite stores
    it), for a value that is the same in many rows: converted once, not per row."""
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return value if process is None else process(value)


def insert_rows(
    conn: Connection,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    shared: Mapping[str, Any] | None = None,
) -> None:
    """Insert rows of driver-ready values (see driver_value), in their order, into table.

    shared holds the values of columns that are the same in every row (on SQLite they are
    bound once per statement of many rows, not once per row). Columns left out take their
    server defaults (an autoincrement id, in the order the rows come). JSON columns take the
    document's text: serialise it first. rows may be an iterator (a zip of columns, say): it is
    consumed once, a statement's rows at a time."""
    shared = dict(shared or {})
    names = [*columns, *shared]
    for name in names:
        if name not in table.c:
            raise KeyError(f"{table.name} has no column {name!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"a column is given twice: {names}")
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(table)
    quoted = ", ".join(preparer.quote(name) for name in names)
    values = tuple(shared.values())
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            _copy(cursor, f"COPY {target} ({quoted}) FROM STDIN", rows, values)
        else:
            head = f"INSERT INTO {target} ({quoted}) VALUES "  # noqa: S608 - quoted names
            _insert_sqlite(cursor, head, len(columns), rows, values)
    finally:
        cursor.close()


def _copy(
    cursor: Any, statement: str, rows: Iterable[Sequence[Any]], shared: tuple[Any, ...]
) -> None:
    # The shared values as COPY's text takes them, dumped once (a datetime dumped per row cost
    # more than the rest of the row).
    adapt = Transformer.from_context(cursor)
    shared = tuple(_copy_text(adapt, value) for value in shared)
    with cursor.copy(statement) as copy:
        write = copy.write_row
        if shared:
            for row in rows:
                write((*row, *shared))
        else:
            for row in rows:
                write(row)


def _copy_text(adapt: TransformerProtocol, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    dumped = adapt.get_dumper(value, PyFormat.TEXT).dump(value)
    if dumped is None:
        return None
    return bytes(dumped).decode()


_SQLITE_ROWS_PER_STATEMENT = 100
"""Rows per multi-row INSERT on SQLite (far below its limit of 32,766 bound values)."""


def _insert_sqlite(
    cursor: Any, head: str, width: int, rows: Iterable[Sequence[Any]], shared: tuple[Any, ...]
) -> None:
    """INSERT ... VALUES (row), (row), ... of up to _SQLITE_ROWS_PER_STATEMENT rows: the shared
    values are ?1 to ?k, bound once per statement; each row's own values follow. Multi-row
    VALUES insert their rows in the order listed, so ids keep the rows' order."""
    if not shared:
        marks = ", ".join("?" * width)
        cursor.executemany(f"{head}({marks})", rows)
        return
    statements: dict[int, str] = {}
    remaining = iter(rows)
    while True:
        values = list(shared)
        count = 0
        for row in islice(remaining, _SQLITE_ROWS_PER_STATEMENT):
            values.extend(row)
            count += 1
        if not count:
            return
        statement = statements.get(count)
        if statement is None:
            statement = statements[count] = head + _values(count, width, len(shared))
        cursor.execute(statement, values)


def _values(count: int, width: int, shared: int) -> str:
    """The VALUES list of count rows of width own values followed by the shared ones."""
    tail = "".join(f", ?{n}" for n in range(1, shared + 1))
    rows = []
    for row in range(count):
        first = shared + 1 + row * width
        own = ", ".join(f"?{n}" for n in range(first, first + width))
        rows.append(f"({own}{tail})")
    return ", ".join(rows)
