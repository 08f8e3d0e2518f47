"""A thin service over the delivery engine's operations, as the process API offers them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from contracts.exceptions import ExceptionRecord, ExceptionStatus, Severity
from gateway_infra.delivery import (
    Attempt,
    DeadLetterQuery,
    Delivery,
    DeliveryAdmin,
    DisabledEndpoint,
    Subscriptions,
    SubscriptionState,
)
from gateway_infra.delivery.admin import Replayed
from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions import open_exception
from process_api.exceptions.errors import ActionNotApplicable
from process_api.exceptions.service import ActionHandler

WORKFLOW = "event_delivery"
ENDPOINT_DISABLED = "webhook_endpoint_disabled"


def open_endpoint_exception(uow: UnitOfWork, endpoint: DisabledEndpoint) -> None:
    """A webhook endpoint was disabled for failing too long: someone must talk to the partner.

    Runs in the transaction that disables it, so the two commit together."""
    open_exception(
        uow,
        workflow=WORKFLOW,
        code=ENDPOINT_DISABLED,
        subject=f"webhook/{endpoint.subscription_id}",
        channel=endpoint.channel,
        severity=Severity.HIGH,
        detail=(
            f"Webhook {endpoint.subscription_id} ({endpoint.url}) of channel {endpoint.channel} "
            f"was disabled at {endpoint.disabled_at.isoformat()}: every call failed since "
            f"{endpoint.failing_since.isoformat()} (last: {endpoint.last_error}). Its events wait; "
            "enable it once the partner has fixed the endpoint, then replay its dead letters."
        )[:4000],
        object_ids={"subscription_id": endpoint.subscription_id, "url": endpoint.url[:500]},
    )


@dataclass(frozen=True)
class DeadLetterPage:
    items: list[Delivery]
    next_cursor: str | None


class DeliveryOperations:
    """Dead letters, replay, re-send and attempts, with who asked recorded on every change."""

    def __init__(self, admin: DeliveryAdmin) -> None:
        self.admin = admin

    @property
    def event_types(self) -> tuple[str, ...]:
        return self.admin.allowed_types

    async def dead_letters(
        self, query: DeadLetterQuery, *, cursor: str | None, limit: int
    ) -> DeadLetterPage:
        after = int(cursor) if cursor else None
        items = await self.admin.dead_letters(query, after=after, limit=limit + 1)
        more = len(items) > limit
        items = items[:limit]
        return DeadLetterPage(items, str(items[-1].delivery_id) if more and items else None)

    async def get(self, delivery_id: int) -> Delivery | None:
        return await self.admin.get(delivery_id)

    async def attempts(self, delivery_id: int) -> list[Attempt] | None:
        return await self.admin.attempts(delivery_id)

    async def replay(
        self,
        delivery_id: int,
        *,
        actor: str,
        also: Replayed | None = None,
    ) -> Delivery:
        return await self.admin.replay(delivery_id, actor=actor, also=also)

    async def replay_matching(self, query: DeadLetterQuery, *, actor: str) -> int:
        return await self.admin.replay_dead(query, actor=actor)

    async def resend(
        self,
        *,
        channel: str,
        start: datetime,
        end: datetime,
        actor: str,
        subscription_id: str | None = None,
        event_types: Sequence[str] | None = None,
    ) -> int:
        return await self.admin.resend(
            channel=channel,
            start=start,
            end=end,
            actor=actor,
            subscription_id=subscription_id,
            event_types=event_types,
        )


def replay_action(admin: DeliveryAdmin, subscriptions: Subscriptions) -> ActionHandler:
    """The `replay` action of the exception queue, for the exception of a disabled webhook
    endpoint: once the endpoint is enabled again, its dead letters start a new series of
    attempts and the exception resolves (the deliveries' own events record who replayed)."""

    async def replay(record: ExceptionRecord, actor: str, _note: str | None) -> ExceptionStatus:
        subscription_id = record.object_ids.get("subscription_id")
        if record.code != ENDPOINT_DISABLED or not subscription_id:
            raise ActionNotApplicable(
                f"exception {record.exception_id} is not about a webhook endpoint: "
                "there are no dead letters to replay"
            )
        endpoint = await subscriptions.get(subscription_id)
        if endpoint is None:
            raise ActionNotApplicable(f"webhook {subscription_id} no longer exists")
        if endpoint.state is not SubscriptionState.ACTIVE:
            raise ActionNotApplicable(
                f"webhook {subscription_id} is {endpoint.state.value}: enable it once the "
                "partner has fixed the endpoint, then replay"
            )
        await admin.replay_dead(DeadLetterQuery(subscription_id=subscription_id), actor=actor)
        return ExceptionStatus.RESOLVED

    return replay
