"""Workflow steps run by the scheduler, supervised: a step that still fails after its workflow's
retry policy becomes an exception a person can act on, and one that succeeds later resolves it.

    steps = StepSupervisor(store, workflow="order_capture")
    steps.register(scheduler, "order.validate", handler)

registers the timer kind with the workflow's retry policy (process_api.exceptions.policies), a
give-up handler that opens the exception (routed by the configured rules, carrying the timer so the
retry action can run it again) and a handler that resolves that exception once the step succeeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from contracts import Money
from contracts.exceptions import Severity
from gateway_infra.scheduler import DueTimer, GiveUpHandler, RetryPolicy, Scheduler, TimerHandler
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions.policies import WorkflowPolicy, policy_for
from process_api.exceptions.repository import (
    has_step_exception,
    open_exception,
    resolve_step_exceptions,
)
from process_api.tables import orders

STEP_FAILED = "step_failed"
_OBJECT_KEYS = ("order_id", "channel_order_id", "sku", "return_id", "shipment_id", "payout_id")


class StepSupervisor:
    """Registers a workflow's timers with its retry policy and turns give-ups into exceptions."""

    def __init__(
        self,
        store: Store,
        *,
        workflow: str,
        code: str = STEP_FAILED,
        severity: Severity | None = None,
    ) -> None:
        self.store = store
        self.workflow = workflow
        self.code = code
        self.policy: WorkflowPolicy = policy_for(workflow)
        self.severity = severity or self.policy.severity

    @property
    def retry(self) -> RetryPolicy:
        return self.policy.retry

    def register(
        self,
        scheduler: Scheduler,
        kind: str,
        handler: TimerHandler,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        """Register the timer kind: the workflow's retry policy (unless given), an exception when
        it gives up, and that exception resolved when a later run succeeds."""
        scheduler.register(
            kind, self.watch(handler), retry=retry or self.retry, on_give_up=self.on_give_up
        )

    def watch(self, handler: TimerHandler) -> TimerHandler:
        """The handler, resolving the step's exception (if it has one) after a successful run."""

        async def run(timer: DueTimer) -> None:
            await handler(timer)
            await self.succeeded(timer)

        return run

    async def succeeded(self, timer: DueTimer) -> None:
        # A read first: nearly every run has no exception, and then nothing is written.
        if not await self.store.read(
            lambda conn: has_step_exception(conn, kind=timer.kind, key=timer.key)
        ):
            return
        await self.store.write(
            lambda uow: resolve_step_exceptions(
                uow,
                kind=timer.kind,
                key=timer.key,
                note=f"{timer.kind} succeeded on attempt {timer.attempts}",
            )
        )

    async def on_give_up(self, timer: DueTimer, error: str) -> None:
        await self.store.write(lambda uow: self.raise_exception(uow, timer, error))

    def raise_exception(self, uow: UnitOfWork, timer: DueTimer, error: str) -> str:
        """Open (or count again) the exception of a step that gave up; its id."""
        context = _StepContext.of(uow, timer.payload)
        detail = f"{timer.kind} ({timer.key}) failed {timer.attempts} times; last error: {error}"
        return open_exception(
            uow,
            workflow=self.workflow,
            code=self.code,
            subject=context.subject or f"{timer.kind}/{timer.key}",
            detail=detail[:4000],
            channel=context.channel,
            money_at_risk=context.money_at_risk,
            severity=self.severity,
            object_ids={"step": timer.kind, **context.object_ids},
            retry_kind=timer.kind,
            retry_key=timer.key,
            retry_payload=dict(timer.payload),
        )


def give_up_to_exception(
    store: Store, *, workflow: str, code: str = STEP_FAILED, severity: Severity | None = None
) -> GiveUpHandler:
    """A scheduler give-up handler that opens an exception of the workflow (see StepSupervisor,
    which also resolves it once the step succeeds)."""
    return StepSupervisor(store, workflow=workflow, code=code, severity=severity).on_give_up


class _StepContext:
    """What a timer's payload says about the step: the objects, channel and money concerned."""

    def __init__(
        self,
        subject: str | None,
        channel: str | None,
        object_ids: dict[str, str],
        money_at_risk: Money | None,
    ) -> None:
        self.subject = subject
        self.channel = channel
        self.object_ids = object_ids
        self.money_at_risk = money_at_risk

    @classmethod
    def of(cls, uow: UnitOfWork, payload: Mapping[str, Any]) -> _StepContext:
        object_ids = {
            key: str(payload[key])
            for key in _OBJECT_KEYS
            if isinstance(payload.get(key), str | int) and str(payload[key])
        }
        channel = payload.get("channel")
        channel = channel if isinstance(channel, str) else None
        money: Money | None = None
        subject: str | None = None
        order_id = object_ids.get("order_id")
        if order_id is not None:
            subject = f"order/{order_id}"
            order = uow.conn.execute(
                select(
                    orders.c.channel, orders.c.channel_order_id, orders.c.total, orders.c.currency
                ).where(orders.c.order_id == order_id)
            ).first()
            if order is not None:
                channel = channel or order.channel
                object_ids.setdefault("channel_order_id", order.channel_order_id)
                money = Money(amount=order.total, currency=order.currency)
        elif "sku" in object_ids:
            subject = f"inventory/{object_ids['sku']}"
        return cls(subject, channel, object_ids, money)
