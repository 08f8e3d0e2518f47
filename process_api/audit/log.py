"""Writing and reading the audit log (proc_audit_log)."""

from __future__ import annotations

from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, RowMapping, insert, select

from contracts.audit import AuditEntry
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.tables import audit_log

MAX_TEXT = 200


def record(
    uow: UnitOfWork,
    *,
    actor: str,
    action: str,
    subject: str,
    channel: str | None = None,
    before: JsonValue = None,
    after: JsonValue = None,
) -> None:
    """Add an entry in the caller's transaction: it commits (or not) with the change itself."""
    uow.conn.execute(
        insert(audit_log).values(
            at=uow.now,
            actor=actor[:MAX_TEXT],
            action=action[:64],
            subject=subject[:MAX_TEXT],
            channel=channel,
            before=before,
            after=after,
            correlation_id=uow.correlation_id,
        )
    )


class AuditLog:
    """Reading the log, newest first, and recording an entry in a transaction of its own."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(
        self,
        *,
        actor: str,
        action: str,
        subject: str,
        channel: str | None = None,
        before: JsonValue = None,
        after: JsonValue = None,
    ) -> None:
        await self.store.write(
            lambda uow: record(
                uow,
                actor=actor,
                action=action,
                subject=subject,
                channel=channel,
                before=before,
                after=after,
            )
        )

    def record_sync(self, **fields: Any) -> None:
        """record, on the calling thread (command-line tools)."""
        self.store.write_sync(lambda uow: record(uow, **fields))

    async def entries(
        self,
        *,
        actor: str | None = None,
        subject: str | None = None,
        action: str | None = None,
        channel: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> list[AuditEntry]:
        def read(conn: Connection) -> list[AuditEntry]:
            query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
            if actor is not None:
                query = query.where(audit_log.c.actor == actor)
            if subject is not None:
                query = query.where(audit_log.c.subject == subject)
            if action is not None:
                query = query.where(audit_log.c.action == action)
            if channel is not None:
                query = query.where(audit_log.c.channel == channel)
            if before_id is not None:
                query = query.where(audit_log.c.id < before_id)
            return [_entry(row) for row in conn.execute(query).mappings()]

        return await self.store.read(read)


def _entry(row: RowMapping) -> AuditEntry:
    return AuditEntry(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        channel=row["channel"],
        before=row["before"],
        after=row["after"],
        correlation_id=row["correlation_id"],
    )
