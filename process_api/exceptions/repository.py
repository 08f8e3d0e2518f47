"""SQL of exception records, run inside the caller's unit of work.

An open exception is keyed by (workflow, code, subject), and by the failed step when it came from
one: raising the same problem again while it is open counts an occurrence instead of opening a
second record. Every new exception is routed (owner team, severity, SLA) by the rules installed for
the database, unless the caller says otherwise.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, Row, bindparam, insert, select, update

from contracts import Money
from contracts.exceptions import (
    ExceptionEntry,
    ExceptionRecord,
    ExceptionStatus,
    FailedStep,
    Severity,
    raised_severity,
)
from gateway_infra.database import for_update
from gateway_infra.scheduler import schedule
from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions.errors import ActionNotApplicable, ExceptionClosed, ExceptionNotFound
from process_api.exceptions.routing import Routing, routing_for
from process_api.tables import exception_history, exceptions

SOURCE = "process_api.exceptions"
UNRESOLVED = (ExceptionStatus.OPEN.value, ExceptionStatus.ACKNOWLEDGED.value)
_OPEN_KEY_LENGTH = 320


def _open_key(workflow: str, code: str, subject: str, step: str | None = None) -> str:
    key = f"{workflow}|{code}|{subject}"
    if step is None:
        return key
    key = f"{key}|{step}"
    if len(key) <= _OPEN_KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


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
    owner_team: str | None = None,
    retry_kind: str | None = None,
    retry_key: str | None = None,
    retry_payload: Mapping[str, JsonValue] | None = None,
    routing: Routing | None = None,
) -> str:
    """Open an exception, or count one more occurrence of the same open one; its id.

    The routing rules (those installed for the database unless `routing` is given) set the owner
    team, the severity when a rule names one, and the due time as now plus the SLA; an explicit
    owner_team or due_at wins. retry_kind/retry_key/retry_payload name the scheduler timer of the
    step that failed, which the retry action runs again; a step that fails again while its
    exception is acknowledged reopens it.
    """
    conn, now = uow.conn, uow.now
    step = None if retry_kind is None or retry_key is None else f"{retry_kind}:{retry_key}"
    key = _open_key(workflow, code, subject, step)
    route = (routing or routing_for(conn)).route(
        workflow=workflow, channel=channel, code=code, money_at_risk=money_at_risk
    )
    existing = conn.execute(
        select(exceptions.c.exception_id, exceptions.c.status).where(exceptions.c.open_key == key)
    ).first()
    if existing is not None:
        exception_id = str(existing.exception_id)
        values: dict[str, Any] = {
            "occurrences": exceptions.c.occurrences + 1,
            "detail": detail,
            "updated_at": now,
        }
        status = ExceptionStatus(existing.status)
        if step is not None:
            values["retry_payload"] = dict(retry_payload or {})
            if status is ExceptionStatus.ACKNOWLEDGED:
                # The step failed again after someone asked to retry it: back to the queue.
                status = ExceptionStatus.OPEN
                values["status"] = status.value
                values["due_at"] = due_at or now + route.sla
        conn.execute(
            update(exceptions).where(exceptions.c.exception_id == exception_id).values(**values)
        )
        _record(uow, exception_id, actor, "raised_again", status, detail)
        return exception_id
    exception_id = "exc_" + secrets.token_hex(10)
    severity = route.severity or severity
    owner_team = owner_team or route.owner_team
    due_at = due_at or now + route.sla
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
            owner_team=owner_team,
            escalations=0,
            retry_kind=None if step is None else retry_kind,
            retry_key=None if step is None else retry_key,
            retry_payload=None if step is None else dict(retry_payload or {}),
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
            "owner_team": owner_team,
            "due_at": due_at.isoformat(),
            "detail": detail,
        },
    )
    return exception_id


_OPEN_OF_SUBJECT = select(exceptions.c.exception_id).where(
    exceptions.c.subject == bindparam("b_subject"),
    exceptions.c.code.in_(bindparam("b_codes", expanding=True)),
    exceptions.c.open_key.is_not(None),
)
"""Built once: every decided order looks for its open exceptions with it."""


def resolve_exceptions(
    uow: UnitOfWork,
    *,
    subject: str,
    codes: Sequence[str],
    actor: str = "gateway",
    note: str | None = None,
) -> int:
    """Resolve the subject's open exceptions of these codes (the problem went away); how many."""
    ids = list(
        uow.conn.execute(_OPEN_OF_SUBJECT, {"b_subject": subject, "b_codes": list(codes)}).scalars()
    )
    for exception_id in ids:
        _close(uow, exception_id, ExceptionStatus.RESOLVED, "resolved", actor, note)
    return len(ids)


def has_step_exception(conn: Connection, *, kind: str, key: str) -> bool:
    """True while an exception about this scheduler timer is unresolved."""
    found = conn.execute(
        select(exceptions.c.exception_id)
        .where(
            exceptions.c.status.in_(UNRESOLVED),
            exceptions.c.retry_kind == kind,
            exceptions.c.retry_key == key,
        )
        .limit(1)
    ).first()
    return found is not None


def resolve_step_exceptions(
    uow: UnitOfWork, *, kind: str, key: str, actor: str = "gateway", note: str | None = None
) -> int:
    """The step (scheduler timer kind, key) succeeded: resolve the exceptions it had; how many."""
    ids = list(
        uow.conn.execute(
            select(exceptions.c.exception_id).where(
                exceptions.c.status.in_(UNRESOLVED),
                exceptions.c.retry_kind == kind,
                exceptions.c.retry_key == key,
                exceptions.c.open_key.is_not(None),
            )
        ).scalars()
    )
    for exception_id in ids:
        _close(uow, exception_id, ExceptionStatus.RESOLVED, "resolved", actor, note)
    return len(ids)


def _close(
    uow: UnitOfWork,
    exception_id: str,
    status: ExceptionStatus,
    action: str,
    actor: str,
    note: str | None,
) -> bool:
    """Close an unresolved exception (resolved or ignored); false when it was closed already."""
    row = uow.conn.execute(
        update(exceptions)
        .where(
            exceptions.c.exception_id == exception_id,
            exceptions.c.status.in_(UNRESOLVED),
        )
        .values(status=status.value, open_key=None, updated_at=uow.now)
        .returning(exceptions.c.subject, exceptions.c.channel, exceptions.c.workflow)
    ).first()
    if row is None:
        return False
    _record(uow, exception_id, actor, action, status, note)
    uow.emit(
        f"exception.{status.value}",
        source=SOURCE,
        subject=row.subject,
        channel=row.channel,
        data={
            "exception_id": exception_id,
            "workflow": row.workflow,
            "resolution": action,
            "note": note,
        },
    )
    return True


def _locked(conn: Connection, exception_id: str) -> Row[Any]:
    query = select(exceptions).where(exceptions.c.exception_id == exception_id)
    query = for_update(conn, query)
    row = conn.execute(query).first()
    if row is None:
        raise ExceptionNotFound(exception_id)
    return row


def _unresolved(conn: Connection, exception_id: str) -> Row[Any]:
    row = _locked(conn, exception_id)
    status = ExceptionStatus(row.status)
    if status.closed:
        raise ExceptionClosed(exception_id, status)
    return row


def acknowledge_exception(
    uow: UnitOfWork, exception_id: str, *, actor: str, note: str | None = None
) -> ExceptionRecord:
    """Someone works on it: open -> acknowledged (acknowledging again changes nothing)."""
    row = _unresolved(uow.conn, exception_id)
    if row.status == ExceptionStatus.OPEN.value:
        _acknowledge(uow, row, actor, "acknowledged", note)
    return _require(uow.conn, exception_id)


def _acknowledge(uow: UnitOfWork, row: Row[Any], actor: str, action: str, note: str | None) -> None:
    uow.conn.execute(
        update(exceptions)
        .where(exceptions.c.exception_id == row.exception_id)
        .values(status=ExceptionStatus.ACKNOWLEDGED.value, updated_at=uow.now)
    )
    _record(uow, row.exception_id, actor, action, ExceptionStatus.ACKNOWLEDGED, note)
    uow.emit(
        "exception.acknowledged",
        source=SOURCE,
        subject=row.subject,
        channel=row.channel,
        data={"exception_id": row.exception_id, "workflow": row.workflow, "action": action},
    )


def retry_step(
    uow: UnitOfWork, exception_id: str, *, actor: str, note: str | None = None
) -> ExceptionRecord:
    """Run the failed step again now (its timer, due at once) and keep the exception
    acknowledged until the step succeeds (resolved then) or gives up again (reopened)."""
    row = _unresolved(uow.conn, exception_id)
    if row.retry_kind is None or row.retry_key is None:
        raise ActionNotApplicable(
            f"exception {exception_id} ({row.code}) did not come from a failed step: "
            "there is nothing to run again"
        )
    schedule(
        uow.conn,
        kind=row.retry_kind,
        key=row.retry_key,
        due_at=uow.now,
        now=uow.now,
        payload=dict(row.retry_payload or {}),
    )
    _acknowledge(uow, row, actor, "retry", note)
    return _require(uow.conn, exception_id)


def close_exception(
    uow: UnitOfWork,
    exception_id: str,
    *,
    status: ExceptionStatus,
    action: str,
    actor: str,
    note: str | None = None,
    already_closed_ok: bool = False,
) -> ExceptionRecord:
    """Close an unresolved exception as resolved or ignored, with the action taken.

    With already_closed_ok, an exception the action itself closed meanwhile (e.g. cancelling an
    order resolves its acknowledgement exception) records the action without changing status."""
    if not status.closed:
        raise ValueError(f"{status.value} does not close an exception")
    row = _locked(uow.conn, exception_id)
    current = ExceptionStatus(row.status)
    if current.closed:
        if not already_closed_ok:
            raise ExceptionClosed(exception_id, current)
        _record(uow, exception_id, actor, action, current, note)
    else:
        _close(uow, exception_id, status, action, actor, note)
    return _require(uow.conn, exception_id)


def escalate_overdue(uow: UnitOfWork, *, routing: Routing | None = None, limit: int = 200) -> int:
    """Escalate unresolved exceptions past their due time: severity one step up (to critical at
    most), one more escalation, an exception.escalated event, and due again one SLA later, so an
    exception still ignored then escalates again. How many were escalated."""
    conn, now = uow.conn, uow.now
    routes = routing or routing_for(conn)
    rows = conn.execute(
        select(exceptions)
        .where(
            exceptions.c.status.in_(UNRESOLVED),
            exceptions.c.due_at.is_not(None),
            exceptions.c.due_at <= now,
        )
        .order_by(exceptions.c.due_at, exceptions.c.exception_id)
        .limit(limit)
    ).all()
    escalated = 0
    for row in rows:
        money = (
            None
            if row.money_at_risk is None or row.currency is None
            else Money(amount=row.money_at_risk, currency=row.currency)
        )
        route = routes.route(
            workflow=row.workflow, channel=row.channel, code=row.code, money_at_risk=money
        )
        before = Severity(row.severity)
        after = raised_severity(before)
        due_at = now + route.sla
        changed = conn.execute(
            update(exceptions)
            .where(
                exceptions.c.exception_id == row.exception_id,
                exceptions.c.escalations == row.escalations,
                exceptions.c.status.in_(UNRESOLVED),
            )
            .values(
                severity=after.value,
                escalations=row.escalations + 1,
                due_at=due_at,
                updated_at=now,
            )
        ).rowcount
        if not changed:
            continue  # escalated or closed meanwhile
        escalated += 1
        _record(
            uow,
            row.exception_id,
            "gateway",
            "escalated",
            ExceptionStatus(row.status),
            f"unresolved past its due time {row.due_at.isoformat()}: severity {before.value} -> "
            f"{after.value}, due again {due_at.isoformat()}",
        )
        uow.emit(
            "exception.escalated",
            source=SOURCE,
            subject=row.subject,
            channel=row.channel,
            data={
                "exception_id": row.exception_id,
                "workflow": row.workflow,
                "code": row.code,
                "owner_team": row.owner_team,
                "previous_severity": before.value,
                "severity": after.value,
                "escalations": row.escalations + 1,
                "overdue_since": row.due_at.isoformat(),
                "due_at": due_at.isoformat(),
            },
        )
    return escalated


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


def _require(conn: Connection, exception_id: str) -> ExceptionRecord:
    found = get_exception(conn, exception_id)
    if found is None:
        raise ExceptionNotFound(exception_id)
    return found


def list_exceptions(
    conn: Connection,
    *,
    status: ExceptionStatus | None = None,
    channel: str | None = None,
    workflow: str | None = None,
    subject: str | None = None,
    owner_team: str | None = None,
    severity: Severity | None = None,
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
    if owner_team is not None:
        query = query.where(exceptions.c.owner_team == owner_team)
    if severity is not None:
        query = query.where(exceptions.c.severity == severity.value)
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
            owner_team=r.owner_team,
            escalations=r.escalations or 0,
            failed_step=(
                None
                if r.retry_kind is None or r.retry_key is None
                else FailedStep(kind=r.retry_kind, key=r.retry_key)
            ),
            created_at=r.created_at,
            updated_at=r.updated_at,
            history=history.get(r.exception_id, []),
        )
        for r in rows
    ]
