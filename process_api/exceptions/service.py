"""The exception queue: reading exceptions, the actions people take on them, and escalation of
those left unresolved past their SLA. One transaction per call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, Protocol

from contracts.exceptions import ExceptionRecord, ExceptionStatus, ResolveAction, Severity
from gateway_infra.scheduler import Recurring
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import repository as repo
from process_api.exceptions.errors import ActionNotApplicable, ExceptionClosed, ExceptionNotFound
from process_api.exceptions.routing import Routing

ESCALATION_TIMER = "exceptions.escalation"
ESCALATION_BATCH = 200


class OrderCanceller(Protocol):
    """The order service, as far as the cancel action needs it."""

    async def cancel(self, order_id: str, *, actor: str, reason: str | None = None) -> Any: ...


ActionHandler = Callable[[ExceptionRecord, str, "str | None"], Awaitable[ExceptionStatus]]
"""An action a workflow offers on its exceptions (e.g. replay of a dead letter): does the work
for (exception, actor, note) and says how the exception ends: resolved, ignored, or acknowledged
(when the outcome comes later and resolves the exception then)."""

Recorded = Callable[[UnitOfWork, ExceptionRecord], None]
"""Extra writes (an audit entry, say) made in the transaction that records an action's outcome
on the exception, given the exception as it is then: they commit, or not, with it."""


def _then(uow: UnitOfWork, record: ExceptionRecord, also: Recorded | None) -> ExceptionRecord:
    if also is not None:
        also(uow, record)
    return record


class ExceptionQueue:
    """The exceptions people work through: listed newest first, acknowledged, resolved with an
    action (retry, cancel, fixed by hand, ignore; replay where delivery registers it), and
    escalated by a recurring job when their SLA passes."""

    def __init__(
        self,
        store: Store,
        *,
        orders: OrderCanceller | None = None,
        routing: Routing | None = None,
    ) -> None:
        self.store = store
        self.orders = orders
        self.routing = routing
        self._actions: dict[ResolveAction, ActionHandler] = {}

    # ------------------------------------------------------------ reading

    async def list(
        self,
        *,
        status: ExceptionStatus | None = None,
        channel: str | None = None,
        workflow: str | None = None,
        subject: str | None = None,
        owner_team: str | None = None,
        severity: Severity | None = None,
        limit: int = 100,
    ) -> list[ExceptionRecord]:
        return await self.store.read(
            lambda conn: repo.list_exceptions(
                conn,
                status=status,
                channel=channel,
                workflow=workflow,
                subject=subject,
                owner_team=owner_team,
                severity=severity,
                limit=limit,
            )
        )

    async def get(self, exception_id: str) -> ExceptionRecord | None:
        return await self.store.read(lambda conn: repo.get_exception(conn, exception_id))

    async def require(self, exception_id: str) -> ExceptionRecord:
        found = await self.get(exception_id)
        if found is None:
            raise ExceptionNotFound(exception_id)
        return found

    # ------------------------------------------------------------ actions

    def register_action(self, action: ResolveAction, handler: ActionHandler) -> None:
        """Offer an action beyond the built-in ones (replay: the delivery work registers it)."""
        if action in _BUILT_IN:
            raise ValueError(f"{action.value} is built in")
        self._actions[action] = handler

    async def acknowledge(
        self,
        exception_id: str,
        *,
        actor: str,
        note: str | None = None,
        also: Recorded | None = None,
    ) -> ExceptionRecord:
        """open -> acknowledged; ExceptionNotFound, ExceptionClosed when resolved or ignored.
        `also` runs in the same transaction."""
        return await self.store.write(
            lambda uow: _then(
                uow,
                repo.acknowledge_exception(uow, exception_id, actor=actor, note=note),
                also,
            )
        )

    async def resolve(
        self,
        exception_id: str,
        action: ResolveAction,
        *,
        actor: str,
        note: str | None = None,
        also: Recorded | None = None,
    ) -> ExceptionRecord:
        """Act on an unresolved exception; ExceptionNotFound, ExceptionClosed, or
        ActionNotApplicable when the action does not fit it. `also` runs in the transaction
        that records the outcome on the exception."""
        if action is ResolveAction.RETRY:
            return await self.store.write(
                lambda uow: _then(
                    uow, repo.retry_step(uow, exception_id, actor=actor, note=note), also
                )
            )
        if action in (ResolveAction.FIXED_BY_HAND, ResolveAction.IGNORE):
            status = (
                ExceptionStatus.IGNORED
                if action is ResolveAction.IGNORE
                else ExceptionStatus.RESOLVED
            )
            return await self._close(exception_id, status, action, actor, note, also=also)
        record = await self._unresolved(exception_id)
        if action is ResolveAction.CANCEL:
            await self._cancel_order(record, actor, note)
            return await self._close(
                exception_id,
                ExceptionStatus.RESOLVED,
                action,
                actor,
                note,
                already_closed_ok=True,
                also=also,
            )
        handler = self._actions.get(action)
        if handler is None:
            raise ActionNotApplicable(f"{action.value} is not available in this gateway")
        outcome = await handler(record, actor, note)
        if outcome is ExceptionStatus.ACKNOWLEDGED:
            return await self.acknowledge(exception_id, actor=actor, note=note, also=also)
        return await self._close(
            exception_id, outcome, action, actor, note, already_closed_ok=True, also=also
        )

    async def _unresolved(self, exception_id: str) -> ExceptionRecord:
        record = await self.require(exception_id)
        if record.status.closed:
            raise ExceptionClosed(exception_id, record.status)
        return record

    async def _close(
        self,
        exception_id: str,
        status: ExceptionStatus,
        action: ResolveAction,
        actor: str,
        note: str | None,
        *,
        already_closed_ok: bool = False,
        also: Recorded | None = None,
    ) -> ExceptionRecord:
        return await self.store.write(
            lambda uow: _then(
                uow,
                repo.close_exception(
                    uow,
                    exception_id,
                    status=status,
                    action=action.value,
                    actor=actor,
                    note=note,
                    already_closed_ok=already_closed_ok,
                ),
                also,
            )
        )

    async def _cancel_order(self, record: ExceptionRecord, actor: str, note: str | None) -> None:
        order_id = record.object_ids.get("order_id")
        if order_id is None and record.subject.startswith("order/"):
            order_id = record.subject.removeprefix("order/")
        if not order_id:
            raise ActionNotApplicable(
                f"exception {record.exception_id} is not about an order: there is none to cancel"
            )
        if self.orders is None:
            raise ActionNotApplicable("cancelling orders is not available in this gateway")
        # The order service answers an order that can no longer be cancelled with its own 409.
        try:
            await self.orders.cancel(
                order_id,
                actor=actor,
                reason=note or f"cancelled from exception {record.exception_id}",
            )
        except LookupError as exc:
            raise ActionNotApplicable(f"the exception's order {order_id} does not exist") from exc

    # ------------------------------------------------------------ escalation

    async def escalate(self) -> int:
        """Escalate every unresolved exception past its due time; how many."""
        total = 0
        while True:
            escalated = await self.store.write(
                lambda uow: repo.escalate_overdue(uow, routing=self.routing, limit=ESCALATION_BATCH)
            )
            total += escalated
            if escalated < ESCALATION_BATCH:
                return total

    def escalation_job(self, every: timedelta) -> Recurring:
        """The recurring SLA check, for the scheduler."""
        return Recurring(self.store, ESCALATION_TIMER, every, self._escalation_round)

    async def _escalation_round(self) -> None:
        await self.escalate()


_BUILT_IN = frozenset(
    {
        ResolveAction.RETRY,
        ResolveAction.CANCEL,
        ResolveAction.FIXED_BY_HAND,
        ResolveAction.IGNORE,
    }
)
