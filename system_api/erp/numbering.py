"""Document numbers the way an ERP gives them: a prefix and a gap-free sequence (SO-000001)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from system_api.tables import document_sequences


def next_document_number(conn: Connection, sequence: str, prefix: str) -> str:
    """The next number of a sequence. Gap-free: it is taken in the document's own transaction
    (a rollback gives it back), and one upsert statement, so concurrent first uses cannot clash."""
    statement = _NEXT_VALUE.get(conn.dialect.name)
    if statement is None:
        dialect: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(document_sequences)
            .on_conflict_do_update(
                index_elements=[document_sequences.c.name],
                set_={"next_value": document_sequences.c.next_value + 1},
            )
            .returning(document_sequences.c.next_value, document_sequences.c.prefix)
        )
        _NEXT_VALUE[conn.dialect.name] = statement
    row = conn.execute(statement, {"name": sequence, "prefix": prefix, "next_value": 2}).one()
    return f"{row.prefix}{row.next_value - 1:06d}"


_NEXT_VALUE: dict[str, Any] = {}
"""The upsert of next_document_number per dialect, built once (values as parameters)."""
