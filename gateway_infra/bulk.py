"""Bulk inserts straight through the driver, for units of work that write many rows at once.

SQLAlchemy's executemany processes every parameter of every row in Python (several microseconds
a row); a publication of 600,000 values spends most of its time there. These helpers hand rows of
driver-ready values to the driver in one call: sqlite3's executemany on SQLite, COPY on PostgreSQL.
They run on the caller's connection, so the rows commit or roll back with its transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table

__all__ = ["driver_value", "insert_rows"]


def driver_value(conn: Connection, column: Column[Any], value: Any) -> Any:
    """value as the column's type hands it to the driver (e.g. a UTC datetime as SQLite stores
    it), for a value that is the same in many rows: converted once, not per row."""
    process = column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect)
    return value if process is None else process(value)


def insert_rows(
    conn: Connection, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """Insert rows of driver-ready values (see driver_value), in their order, into table.

    Columns left out take their server defaults (an autoincrement id, in the order the rows
    come). JSON columns take the document's text: serialise it first."""
    for name in columns:
        if name not in table.c:
            raise KeyError(f"{table.name} has no column {name!r}")
    preparer = conn.dialect.identifier_preparer
    target = preparer.format_table(table)
    names = ", ".join(preparer.quote(name) for name in columns)
    if conn.dialect.name == "postgresql":
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()
        return
    batch = list(rows)
    if batch:
        marks = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {target} ({names}) VALUES ({marks})"  # noqa: S608 - quoted names of table's columns
        conn.exec_driver_sql(statement, batch)
