"""SLA monitors: per workflow and channel, how long a thing may wait (an order for its
acknowledgement, a channel for confirming published availability or prices, a shipped package for
the warehouse's confirmation). A recurring check opens one exception per breach (routed like any
other) and resolves it once the condition clears; docs/metrics.md."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import Connection, and_, func, select

from contracts import Money
from contracts.exceptions import ResolveAction, Severity
from gateway_infra.scheduler import Recurring
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.channels.repository import load_rows, validate_each
from process_api.exceptions.repository import open_exception, resolve_exceptions
from process_api.monitoring.readings import awaiting_acknowledgement, inventory_sync
from process_api.tables import (
    exception_history,
    exceptions,
    orders,
    price_publications,
    shipment_packages,
)

SLA_CHECK_JOB = "sla.check"


class SlaWorkflow(StrEnum):
    ORDER_ACKNOWLEDGEMENT = "order_acknowledgement"
    INVENTORY_SYNC = "inventory_sync"
    SHIPMENT_CONFIRMATION = "shipment_confirmation"
    PRICE_CONFIRMATION = "price_confirmation"


@dataclass(frozen=True)
class _Kind:
    code: str
    """The exception code a breach opens."""
    exception_workflow: str
    severity: Severity
    default_within: timedelta | None
    """None: the channel profile's acknowledgement deadline."""


KINDS: dict[SlaWorkflow, _Kind] = {
    SlaWorkflow.ORDER_ACKNOWLEDGEMENT: _Kind(
        "sla_acknowledgement_overdue", "order_capture", Severity.HIGH, None
    ),
    SlaWorkflow.INVENTORY_SYNC: _Kind(
        "sla_inventory_sync_lag", "inventory_sync", Severity.HIGH, timedelta(minutes=5)
    ),
    SlaWorkflow.SHIPMENT_CONFIRMATION: _Kind(
        "sla_shipment_confirmation_overdue",
        "shipment_confirmation",
        Severity.HIGH,
        timedelta(hours=1),
    ),
    SlaWorkflow.PRICE_CONFIRMATION: _Kind(
        "sla_price_confirmation_overdue", "pricing", Severity.MEDIUM, timedelta(hours=1)
    ),
}
SLA_CODES: dict[str, SlaWorkflow] = {kind.code: workflow for workflow, kind in KINDS.items()}
DEFAULT_ACKNOWLEDGEMENT_DEADLINE = timedelta(hours=4)


class SlaMonitor(BaseModel):
    """One rule: the workflow it watches, the channel (none: every channel without a rule of its
    own), the time allowed, and whether it is on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    workflow: SlaWorkflow
    channel: str | None = Field(default=None, min_length=1, max_length=64)
    within: Annotated[timedelta, Field(gt=timedelta(0))] | None = Field(
        default=None,
        description=(
            "ISO 8601 duration. Unset: 5 min for inventory_sync, 1 h for shipment_confirmation "
            "and price_confirmation, the channel profile's acknowledgement deadline for "
            "order_acknowledgement."
        ),
    )
    enabled: bool = True


_MONITORS = TypeAdapter(list[SlaMonitor])


class SlaMonitorsConfigError(ValueError):
    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(f"{source}: " + "; ".join(problems))
        self.source = source
        self.problems = list(problems)


class SlaMonitors:
    """The configured rules; each workflow is watched on every channel unless a rule says not."""

    def __init__(self, rules: Sequence[SlaMonitor] = ()) -> None:
        self.rules = tuple(rules)

    def rule(self, workflow: SlaWorkflow, channel: str) -> SlaMonitor:
        specific = next(
            (r for r in self.rules if r.workflow is workflow and r.channel == channel), None
        )
        general = next(
            (r for r in self.rules if r.workflow is workflow and r.channel is None), None
        )
        return specific or general or SlaMonitor(workflow=workflow)

    def within(
        self, workflow: SlaWorkflow, channel: str, acknowledgement_deadline: timedelta
    ) -> timedelta | None:
        """The time allowed on this channel, or None when the monitor is off there."""
        rule = self.rule(workflow, channel)
        if not rule.enabled:
            return None
        return rule.within or KINDS[workflow].default_within or acknowledgement_deadline


def load_sla_monitors(path_or_json: str) -> SlaMonitors:
    """Rules from a JSON array (text starting with '[') or a file holding one; the error names
    every invalid rule and every duplicate (workflow, channel)."""
    text = path_or_json.strip()
    source = "inline JSON"
    if not text.startswith(("[", "{")):
        path = Path(text).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SlaMonitorsConfigError(source, [f"cannot read the file: {exc}"]) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SlaMonitorsConfigError(source, [f"not valid JSON: {exc}"]) from exc
    try:
        rules = _MONITORS.validate_python(document)
    except ValidationError as exc:
        raise SlaMonitorsConfigError(
            source,
            [
                f"{'/'.join(str(p) for p in error['loc']) or 'document'}: {error['msg']}"
                for error in exc.errors()
            ],
        ) from exc
    seen: set[tuple[SlaWorkflow, str | None]] = set()
    duplicates = []
    for rule in rules:
        key = (rule.workflow, rule.channel)
        if key in seen:
            duplicates.append(
                f"more than one rule for {rule.workflow.value} on {rule.channel or 'every channel'}"
            )
        seen.add(key)
    if duplicates:
        raise SlaMonitorsConfigError(source, duplicates)
    return SlaMonitors(rules)


# ---------------------------------------------------------------- what is late


@dataclass(frozen=True)
class Breach:
    workflow: SlaWorkflow
    channel: str
    subject: str
    since: datetime
    """When the time allowed ran out."""
    detail: str
    object_ids: dict[str, str]
    money_at_risk: Money | None = None


def acknowledgement_deadlines(conn: Connection) -> dict[str, timedelta]:
    """Each channel's acknowledgement deadline from its (valid) stored profile."""
    valid, _invalid = validate_each(load_rows(conn))
    return {s.profile.channel: s.profile.acknowledgement_deadline for s in valid}


def find_breaches(conn: Connection, now: datetime, monitors: SlaMonitors) -> list[Breach]:
    deadlines = acknowledgement_deadlines(conn)

    def within(workflow: SlaWorkflow, channel: str) -> timedelta | None:
        return monitors.within(
            workflow, channel, deadlines.get(channel, DEFAULT_ACKNOWLEDGEMENT_DEADLINE)
        )

    found: list[Breach] = []
    for waiting in awaiting_acknowledgement(conn):
        order_id, channel, channel_order_id = (
            waiting.order_id,
            waiting.channel,
            waiting.channel_order_id,
        )
        due_since = waiting.due_since
        allowed = within(SlaWorkflow.ORDER_ACKNOWLEDGEMENT, channel)
        if allowed is not None and due_since + allowed <= now:
            found.append(
                Breach(
                    SlaWorkflow.ORDER_ACKNOWLEDGEMENT,
                    channel,
                    f"order/{order_id}",
                    due_since + allowed,
                    f"order {channel_order_id} of {channel} is not acknowledged "
                    f"{_duration(now - due_since)} after it became due (allowed: "
                    f"{_duration(allowed)})",
                    {"order_id": order_id, "channel_order_id": channel_order_id},
                    waiting.total,
                )
            )
    for sync in inventory_sync(conn):  # the lag /metrics and the console show
        channel, oldest = sync.channel, sync.oldest_unconfirmed
        if oldest is None:
            continue
        allowed = within(SlaWorkflow.INVENTORY_SYNC, channel)
        if allowed is not None and oldest + allowed <= now:
            found.append(
                Breach(
                    SlaWorkflow.INVENTORY_SYNC,
                    channel,
                    f"channel/{channel}/availability",
                    oldest + allowed,
                    f"{channel} has not confirmed availability published "
                    f"{_duration(now - oldest)} ago (allowed: {_duration(allowed)})",
                    {"channel": channel},
                )
            )
    for order_id, channel, channel_order_id, shipped_at in conn.execute(
        select(
            shipment_packages.c.order_id,
            orders.c.channel,
            orders.c.channel_order_id,
            func.min(shipment_packages.c.shipped_at),
        )
        .join(orders, orders.c.order_id == shipment_packages.c.order_id)
        .where(shipment_packages.c.state == "pending")
        .group_by(shipment_packages.c.order_id, orders.c.channel, orders.c.channel_order_id)
    ):
        allowed = within(SlaWorkflow.SHIPMENT_CONFIRMATION, channel)
        if allowed is not None and shipped_at + allowed <= now:
            found.append(
                Breach(
                    SlaWorkflow.SHIPMENT_CONFIRMATION,
                    channel,
                    f"order/{order_id}",
                    shipped_at + allowed,
                    f"a package of order {channel_order_id} shipped "
                    f"{_duration(now - shipped_at)} ago is not confirmed by the warehouse "
                    f"(allowed: {_duration(allowed)})",
                    {"order_id": order_id, "channel_order_id": channel_order_id},
                )
            )
    for channel, oldest in conn.execute(
        select(price_publications.c.channel, func.min(price_publications.c.sent_at))
        .where(price_publications.c.state == "sent")
        .group_by(price_publications.c.channel)
    ):
        allowed = within(SlaWorkflow.PRICE_CONFIRMATION, channel)
        if oldest is not None and allowed is not None and oldest + allowed <= now:
            found.append(
                Breach(
                    SlaWorkflow.PRICE_CONFIRMATION,
                    channel,
                    f"channel/{channel}/prices",
                    oldest + allowed,
                    f"{channel} has not confirmed prices sent {_duration(now - oldest)} ago "
                    f"(allowed: {_duration(allowed)})",
                    {"channel": channel},
                )
            )
    return found


def _duration(value: timedelta) -> str:
    seconds = max(0, math.floor(value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {seconds} s"
    return f"{seconds} s"


@dataclass(frozen=True)
class CheckResult:
    opened: int
    resolved: int


def check(uow: UnitOfWork, monitors: SlaMonitors) -> CheckResult:
    """One round: an exception for each breach not raised yet, and the breaches that cleared
    resolved. A breach raises once: an exception about it closed by a person (fixed by hand,
    ignored) is not opened again while the same breach lasts."""
    conn, now = uow.conn, uow.now
    breaches = find_breaches(conn, now, monitors)
    current = {(KINDS[b.workflow].code, b.subject) for b in breaches}
    unresolved: set[tuple[str, str]] = {
        (code, subject)
        for code, subject in conn.execute(
            select(exceptions.c.code, exceptions.c.subject).where(
                exceptions.c.code.in_(list(SLA_CODES)), exceptions.c.open_key.is_not(None)
            )
        )
    }
    opened = 0
    for breach in breaches:
        kind = KINDS[breach.workflow]
        if (kind.code, breach.subject) in unresolved or _raised_since(conn, kind.code, breach):
            continue
        open_exception(
            uow,
            workflow=kind.exception_workflow,
            code=kind.code,
            subject=breach.subject,
            channel=breach.channel,
            detail=breach.detail,
            money_at_risk=breach.money_at_risk,
            severity=kind.severity,
            object_ids={**breach.object_ids, "sla": breach.workflow.value},
        )
        opened += 1
    resolved = 0
    for code, subject in sorted(unresolved - current):
        resolved += resolve_exceptions(
            uow, subject=subject, codes=[code], note="the SLA is met again"
        )
    return CheckResult(opened, resolved)


# How a person closes an exception about a breach they accept (history action): such a breach
# is not raised again while it lasts. One the gateway resolved (the SLA was met for a while)
# does not count: a later breach with an earlier start is raised.
CLOSED_BY_A_PERSON = (ResolveAction.FIXED_BY_HAND.value, ResolveAction.IGNORE.value)


def _raised_since(conn: Connection, code: str, breach: Breach) -> bool:
    closed_by_a_person = (
        select(exception_history.c.id)
        .where(
            exception_history.c.exception_id == exceptions.c.exception_id,
            exception_history.c.action.in_(CLOSED_BY_A_PERSON),
        )
        .exists()
    )
    return (
        conn.execute(
            select(exceptions.c.exception_id)
            .where(
                and_(
                    exceptions.c.code == code,
                    exceptions.c.subject == breach.subject,
                    exceptions.c.created_at >= breach.since,
                    closed_by_a_person,
                )
            )
            .limit(1)
        ).first()
        is not None
    )


class SlaCheck:
    """The recurring check (every `every`, one gateway process at a time)."""

    def __init__(self, store: Store, monitors: SlaMonitors, every: timedelta) -> None:
        self.store = store
        self.monitors = monitors
        self.job = Recurring(store, SLA_CHECK_JOB, every, self.run)

    async def run_once(self) -> CheckResult:
        return await self.store.write(lambda uow: check(uow, self.monitors))

    async def run(self) -> None:
        await self.run_once()
