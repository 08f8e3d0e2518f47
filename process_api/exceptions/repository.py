"""SQL of exception records, run inside the caller's unit of work.

An open exception is keyed by (workflow, code, subject): raising the same problem again while it
is open counts an occurrence instead of opening a second record.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from contracts import Money
from contracts.exceptions import ExceptionEntry, ExceptionRecord, ExceptionStatus, Severity
from gateway_infra.unit_of_work import UnitOfWork
from process_api.tables import exception_history, exceptions

SOURCE = "process_api.exceptions"


def _open_key(workflow: str, code: str, subject: str) -> str:
    return f"{workflow}|{code}|{subject}"


def open_exception(
    uow: UnitOfWork,
    *,
    workflow: str,
    code: str,
    subject: str,
    detail: str,
    channel: str | None = None,
    money_at_risk: Money | None = None,
    severity: Severity = Severity.MEDIUM,
    object_ids: Mapping[str, str] | None = None,
    due_at: datetime | None = None,
    actor: str = "gateway",
) -> str:
    """Open an exception, or count one more occurrence of the same open one; its id."""
    conn, now = uow.conn, uow.now
    key = _open_key(workflow, code, subject)
    existing = conn.execute(
        select(exceptions.c.exception_id).where(exceptions.c.open_key == key)
    ).scalar_one_or_none()
    if existing is not None:
        conn.execute(
            update(exceptions)
            .where(exceptions.c.exception_id == existing)
            .values(
                occurrences=exceptions.c.occurrences + 1,
                detail=detail,
                updated_at=now,
            )
        )
        _record(uow, existing, actor, "raised_again", ExceptionStatus.OPEN, detail)
        return str(existing)
    exception_id = "exc_" + secrets.token_hex(10)
    conn.execute(
        insert(exceptions).values(
            exception_id=exception_id,
            workflow=workflow,
            code=code,
            subject=subject,
            channel=channel,
            detail=detail,
            object_ids=dict(object_ids or {}),
            money_at_risk=None if money_at_risk is None else money_at_risk.amount,
            currency=None if money_at_risk is None else money_at_risk.currency,
            severity=severity.value,
            status=ExceptionStatus.OPEN.value,
            due_at=due_at,
            open_key=key,
            occurrences=1,
            created_at=now,
            updated_at=now,
        )
    )
    _record(uow, exception_id, actor, "raised", ExceptionStatus.OPEN, detail)
    uow.emit(
        "exception.opened",
        source=SOURCE,
        subject=subject,
        channel=channel,
        data={
            "exception_id": exception_id,
            "workflow": workflow,
            "code": code,
            "severity": severity.value,
            "detail": detail,
        },
    )
    return exception_id


def resolve_exceptions(
    uow: UnitOfWork,
    *,
    subject: str,
    codes: Sequence[str],
    actor: str = "gateway",
    note: str | None = None,
) -> int:
    """Resolve the subject's open exceptions of these codes (the problem went away); how many."""
    conn, now = uow.conn, uow.now
    ids = list(
        conn.execute(
            select(exceptions.c.exception_id).where(
                exceptions.c.subject == subject,
                exceptions.c.code.in_(list(codes)),
                exceptions.c.open_key.is_not(None),
            )
        ).scalars()
    )
    for exception_id in ids:
        conn.execute(
            update(exceptions)
            .where(exceptions.c.exception_id == exception_id)
            .values(status=ExceptionStatus.RESOLVED.value, open_key=None, updated_at=now)
        )
        _record(uow, exception_id, actor, "resolved", ExceptionStatus.RESOLVED, note)
        uow.emit(
            "exception.resolved",
            source=SOURCE,
            subject=subject,
            data={"exception_id": exception_id, "note": note},
        )
    return len(ids)


def _record(
    uow: UnitOfWork,
    exception_id: str,
    actor: str,
    action: str,
    status: ExceptionStatus,
    note: str | None,
) -> None:
    uow.conn.execute(
        insert(exception_history).values(
            exception_id=exception_id,
            at=uow.now,
            actor=actor,
            action=action,
            status=status.value,
            correlation_id=uow.correlation_id,
            note=note,
        )
    )


def get_exception(conn: Connection, exception_id: str) -> ExceptionRecord | None:
    row = conn.execute(select(exceptions).where(exceptions.c.exception_id == exception_id)).first()
    return None if row is None else _load(conn, [row])[0]


def list_exceptions(
    conn: Connection,
    *,
    status: ExceptionStatus | None = None,
    channel: str | None = None,
    workflow: str | None = None,
    subject: str | None = None,
    limit: int = 100,
) -> list[ExceptionRecord]:
    """Exceptions newest first, filtered."""
    query = (
        select(exceptions)
        .order_by(exceptions.c.created_at.desc(), exceptions.c.exception_id)
        .limit(limit)
    )
    if status is not None:
        query = query.where(exceptions.c.status == status.value)
    if channel is not None:
        query = query.where(exceptions.c.channel == channel)
    if workflow is not None:
        query = query.where(exceptions.c.workflow == workflow)
    if subject is not None:
        query = query.where(exceptions.c.subject == subject)
    return _load(conn, conn.execute(query).all())


def _load(conn: Connection, rows: Sequence[Row[Any]]) -> list[ExceptionRecord]:
    if not rows:
        return []
    history: dict[str, list[ExceptionEntry]] = {}
    for h in conn.execute(
        select(exception_history)
        .where(exception_history.c.exception_id.in_([r.exception_id for r in rows]))
        .order_by(exception_history.c.id)
    ):
        history.setdefault(h.exception_id, []).append(
            ExceptionEntry(
                at=h.at,
                actor=h.actor,
                action=h.action,
                status=ExceptionStatus(h.status),
                correlation_id=h.correlation_id,
                note=h.note,
            )
        )
    return [
        ExceptionRecord(
            exception_id=r.exception_id,
            workflow=r.workflow,
            code=r.code,
            subject=r.subject,
            channel=r.channel,
            detail=r.detail,
            object_ids=dict(r.object_ids or {}),
            money_at_risk=(
                None
                if r.money_at_risk is None or r.currency is None
                else Money(amount=r.money_at_risk, currency=r.currency)
            ),
            severity=Severity(r.severity),
            status=ExceptionStatus(r.status),
            due_at=r.due_at,
            occurrences=r.occurrences,
            created_at=r.created_at,
            updated_at=r.updated_at,
            history=history.get(r.exception_id, []),
        )
        for r in rows
    ]
