"""Settlement: a channel's payout report reconciled, line by line, against what the ERP invoiced
and what was credited. Matched invoiced orders become settled; every other line becomes an
exception a person looks at. Runs inside the caller's unit of work."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, insert, select, update

from contracts import Money, Order, OrderStatus, SettlementLine, SettlementReport
from contracts.exceptions import Severity
from gateway_infra.problems import ProblemError
from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions import open_exception
from process_api.fulfilment.models import (
    SOURCE,
    Imported,
    LineOutcome,
    MismatchCode,
    ReconciledLine,
    Reconciliation,
)
from process_api.fulfilment.repository import invoiced_total, refunded_total
from process_api.order_to_cash import repository as orders_repo
from process_api.problems import SETTLEMENT_CONFLICT
from process_api.tables import settlement_lines, settlements
from process_api.text import clip

__all__ = ["digest_of", "import_report", "load_reconciliation"]

WORKFLOW = "settlement"
# An order the gateway cannot place, or another channel's, is money nobody can account for.
_SEVERITY = {
    MismatchCode.UNKNOWN_ORDER: Severity.HIGH,
    MismatchCode.OTHER_CHANNEL: Severity.HIGH,
    MismatchCode.GROSS_MISMATCH: Severity.HIGH,
    MismatchCode.REFUNDS_MISMATCH: Severity.HIGH,
}


def digest_of(report: SettlementReport) -> str:
    """The report's fingerprint: equal for the same report however its JSON was written."""
    canonical = json.dumps(
        report.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def import_report(uow: UnitOfWork, report: SettlementReport, *, actor: str) -> Imported:
    """Record and reconcile the report once per (channel, payout id).

    The same report again changes nothing; another report under the same payout id is refused
    (409 settlement-conflict) and changes nothing either.
    """
    conn = uow.conn
    digest = digest_of(report)
    existing = conn.execute(
        select(settlements.c.digest).where(
            settlements.c.channel == report.channel, settlements.c.payout_id == report.payout_id
        )
    ).scalar_one_or_none()
    if existing is not None:
        if existing != digest:
            raise ProblemError(
                SETTLEMENT_CONFLICT,
                f"payout {report.payout_id!r} of {report.channel} was imported before with "
                "other contents",
                channel=report.channel,
                payout_id=report.payout_id,
            )
        found = load_reconciliation(conn, report.channel, report.payout_id)
        assert found is not None
        return Imported(reconciliation=found, created=False)

    total_net = report.total_net()
    conn.execute(
        insert(settlements).values(
            channel=report.channel,
            payout_id=report.payout_id,
            currency=report.currency,
            period_start=report.period_start,
            period_end=report.period_end,
            total_net=total_net.amount,
            report=report.model_dump(mode="json"),
            digest=digest,
            matched=0,
            mismatched=0,
            imported_by=actor,
            imported_at=uow.now,
        )
    )
    seen: set[str] = set()
    rows = [
        _reconcile_line(uow, report, position, line, seen, actor)
        for position, line in enumerate(report.lines)
    ]
    if rows:
        conn.execute(insert(settlement_lines), rows)
    matched = sum(1 for row in rows if row["outcome"] == LineOutcome.MATCHED.value)
    conn.execute(
        update(settlements)
        .where(settlements.c.channel == report.channel, settlements.c.payout_id == report.payout_id)
        .values(matched=matched, mismatched=len(rows) - matched)
    )
    uow.emit(
        "settlement.imported",
        source=SOURCE,
        subject=f"settlement/{report.channel}/{report.payout_id}",
        channel=report.channel,
        data={
            "channel": report.channel,
            "payout_id": report.payout_id,
            "total_net": total_net.model_dump(mode="json"),
            "matched": matched,
            "mismatched": len(rows) - matched,
        },
    )
    found = load_reconciliation(conn, report.channel, report.payout_id)
    assert found is not None
    return Imported(reconciliation=found, created=True)


@dataclass
class _Verdict:
    order: Order | None
    code: MismatchCode | None = None
    detail: str | None = None
    invoiced: Decimal | None = None
    refunded: Decimal | None = None
    at_risk: Decimal | None = None


def _find_order(conn: Connection, channel: str, line: SettlementLine) -> Order | None:
    order = orders_repo.load_order(conn, line.order_id) if line.order_id else None
    if order is None and line.channel_order_id is not None:
        order_id = orders_repo.find_order_id(conn, channel, line.channel_order_id)
        order = orders_repo.load_order(conn, order_id) if order_id else None
    return order


def _judge(
    conn: Connection, report: SettlementReport, line: SettlementLine, seen: set[str]
) -> _Verdict:
    order = _find_order(conn, report.channel, line)
    named = line.order_id or line.channel_order_id
    if order is None:
        return _Verdict(
            None,
            MismatchCode.UNKNOWN_ORDER,
            f"no order {named!r} of channel {report.channel}",
            at_risk=line.gross.amount,
        )
    verdict = _Verdict(order)
    if order.channel != report.channel:
        verdict.code = MismatchCode.OTHER_CHANNEL
        verdict.detail = f"order {order.order_id} belongs to channel {order.channel}"
        verdict.at_risk = line.gross.amount
    elif line.channel_order_id is not None and line.channel_order_id != order.channel_order_id:
        verdict.code = MismatchCode.ORDER_REFERENCE_MISMATCH
        verdict.detail = (
            f"order {order.order_id} is channel order {order.channel_order_id}, "
            f"the report says {line.channel_order_id}"
        )
    elif order.order_id in seen:
        verdict.code = MismatchCode.DUPLICATE_LINE
        verdict.detail = f"order {order.order_id} appears more than once in the payout"
        verdict.at_risk = line.gross.amount
    elif order.status is OrderStatus.SETTLED:
        verdict.code = MismatchCode.ALREADY_SETTLED
        verdict.detail = f"order {order.order_id} was settled by an earlier payout"
        verdict.at_risk = line.gross.amount
    elif order.status is not OrderStatus.INVOICED:
        verdict.code = MismatchCode.ORDER_NOT_INVOICED
        verdict.detail = f"order {order.order_id} is {order.status.value}, not invoiced"
        verdict.at_risk = line.gross.amount
    elif line.gross.currency != order.currency:
        verdict.code = MismatchCode.CURRENCY_MISMATCH
        verdict.detail = (
            f"order {order.order_id} is in {order.currency}, the payout in {line.gross.currency}"
        )
        verdict.at_risk = line.gross.amount
    else:
        verdict.invoiced = invoiced_total(conn, order.order_id)
        verdict.refunded = refunded_total(conn, order.order_id)
        problems: list[str] = []
        if line.gross.amount != verdict.invoiced:
            verdict.code = MismatchCode.GROSS_MISMATCH
            verdict.at_risk = abs(line.gross.amount - verdict.invoiced)
            problems.append(f"gross {line.gross.amount} but {verdict.invoiced} invoiced")
        if line.refunds.amount != verdict.refunded:
            verdict.code = verdict.code or MismatchCode.REFUNDS_MISMATCH
            verdict.at_risk = (verdict.at_risk or Decimal(0)) + abs(
                line.refunds.amount - verdict.refunded
            )
            problems.append(f"refunds {line.refunds.amount} but {verdict.refunded} credited")
        if problems:
            verdict.detail = f"order {order.order_id}: " + "; ".join(problems)
    return verdict


def _reconcile_line(
    uow: UnitOfWork,
    report: SettlementReport,
    position: int,
    line: SettlementLine,
    seen: set[str],
    actor: str,
) -> dict[str, Any]:
    verdict = _judge(uow.conn, report, line, seen)
    order = verdict.order
    exception_id: str | None = None
    if order is not None:
        seen.add(order.order_id)
    if verdict.code is None:
        assert order is not None
        if orders_repo.move_order(
            uow,
            order.order_id,
            OrderStatus.INVOICED,
            OrderStatus.SETTLED,
            actor=actor,
            reason=f"payout {report.payout_id} of {report.channel}",
        ):
            uow.emit(
                "order.settled",
                source=SOURCE,
                subject=f"order/{order.order_id}",
                channel=order.channel,
                data={
                    "order_id": order.order_id,
                    "channel_order_id": order.channel_order_id,
                    "payout_id": report.payout_id,
                    "gross": line.gross.model_dump(mode="json"),
                    "fees": line.fees.model_dump(mode="json"),
                    "refunds": line.refunds.model_dump(mode="json"),
                    "net": line.net.model_dump(mode="json"),
                },
            )
    else:
        object_ids = {
            "channel": report.channel,
            "payout_id": report.payout_id,
            "line": str(position),
        }
        if order is not None:
            object_ids["order_id"] = order.order_id
        if line.channel_order_id is not None:
            object_ids["channel_order_id"] = line.channel_order_id
        exception_id = open_exception(
            uow,
            workflow=WORKFLOW,
            code=verdict.code.value,
            subject=(
                f"order/{order.order_id}"
                if order is not None
                else _line_subject(report.channel, report.payout_id, position)
            ),
            channel=report.channel,
            detail=clip(f"payout {report.payout_id}, line {position}: {verdict.detail}"),
            money_at_risk=(
                None
                if verdict.at_risk is None
                else Money(amount=verdict.at_risk, currency=line.gross.currency)
            ),
            severity=_SEVERITY.get(verdict.code, Severity.MEDIUM),
            object_ids=object_ids,
        )
    return {
        "channel": report.channel,
        "payout_id": report.payout_id,
        "position": position,
        "order_id": None if order is None else order.order_id,
        "channel_order_id": line.channel_order_id,
        "gross": line.gross.amount,
        "fees": line.fees.amount,
        "refunds": line.refunds.amount,
        "net": line.net.amount,
        "invoiced": verdict.invoiced,
        "refunded": verdict.refunded,
        "outcome": (LineOutcome.MATCHED if verdict.code is None else LineOutcome.MISMATCH).value,
        "code": None if verdict.code is None else verdict.code.value,
        "detail": verdict.detail,
        "exception_id": exception_id,
    }


def _line_subject(channel: str, payout_id: str, position: int) -> str:
    """The subject of a line whose order is unknown; a long payout id is named by its digest,
    so the subject stays within what exception records hold (200 characters)."""
    subject = f"settlement/{channel}/{payout_id}/{position}"
    if len(subject) <= 200:
        return subject
    digest = hashlib.sha256(payout_id.encode()).hexdigest()[:32]
    return f"settlement/{channel}/sha256:{digest}/{position}"


def load_reconciliation(conn: Connection, channel: str, payout_id: str) -> Reconciliation | None:
    """The imported report and its reconciliation, or None."""
    header = conn.execute(
        select(settlements).where(
            settlements.c.channel == channel, settlements.c.payout_id == payout_id
        )
    ).first()
    if header is None:
        return None
    currency = header.currency

    def money(amount: Decimal | None) -> Money | None:
        return None if amount is None else Money(amount=amount, currency=currency)

    lines = [
        ReconciledLine(
            position=row.position,
            order_id=row.order_id,
            channel_order_id=row.channel_order_id,
            gross=Money(amount=row.gross, currency=currency),
            fees=Money(amount=row.fees, currency=currency),
            refunds=Money(amount=row.refunds, currency=currency),
            net=Money(amount=row.net, currency=currency),
            invoiced=money(row.invoiced),
            refunded=money(row.refunded),
            outcome=LineOutcome(row.outcome),
            code=None if row.code is None else MismatchCode(row.code),
            detail=row.detail,
            exception_id=row.exception_id,
        )
        for row in conn.execute(
            select(settlement_lines)
            .where(settlement_lines.c.channel == channel, settlement_lines.c.payout_id == payout_id)
            .order_by(settlement_lines.c.position)
        )
    ]
    return Reconciliation(
        channel=header.channel,
        payout_id=header.payout_id,
        currency=currency,
        total_net=Money(amount=header.total_net, currency=currency),
        matched=header.matched,
        mismatched=header.mismatched,
        imported_at=header.imported_at,
        imported_by=header.imported_by,
        lines=lines,
        report=SettlementReport.model_validate(header.report),
    )
