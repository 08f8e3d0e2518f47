"""What the delivery engine hands out: subscriptions, deliveries and attempts as they stand."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    CANCELLED = "cancelled"


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REFUSED = "refused"


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Subscription(_View):
    """A channel's webhook endpoint: where its events go, and how it is doing."""

    subscription_id: str
    channel: str
    client_id: str | None
    url: str
    event_types: list[str]
    description: str | None
    state: SubscriptionState
    disabled_reason: str | None
    failing_since: datetime | None = Field(
        description="Since when every attempt to this endpoint has failed; null while it works."
    )
    secret_version: int
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret replaced by the last rotation still signs too."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Subscription:
        return cls(
            subscription_id=row.subscription_id,
            channel=row.channel,
            client_id=row.client_id,
            url=row.url,
            event_types=list(row.event_types),
            description=row.description,
            state=SubscriptionState(row.state),
            disabled_reason=row.disabled_reason,
            failing_since=row.failing_since,
            secret_version=row.secret_version,
            previous_secret_expires_at=row.previous_secret_expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class Delivery(_View):
    """One event on its way to one subscription."""

    delivery_id: int
    subscription_id: str
    event_id: str
    event_type: str
    channel: str
    subject: str
    position: int
    occurred_at: datetime
    state: DeliveryState
    attempts: int = Field(description="Attempts in the current series (since creation or replay).")
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    dead_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(
            delivery_id=row.delivery_id,
            subscription_id=row.subscription_id,
            event_id=row.event_id,
            event_type=row.event_type,
            channel=row.channel,
            subject=row.subject,
            position=row.position,
            occurred_at=row.occurred_at,
            state=DeliveryState(row.state),
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            delivered_at=row.delivered_at,
            dead_at=row.dead_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class Attempt(_View):
    """One call made to deliver: when, how it went and how long it took."""

    attempt_id: int
    delivery_id: int
    attempt: int
    started_at: datetime
    outcome: AttemptOutcome
    latency_ms: int
    status_code: int | None
    response_bytes: int | None
    error: str | None
    sender: str

    @classmethod
    def from_row(cls, row: Any) -> Attempt:
        return cls(
            attempt_id=row.attempt_id,
            delivery_id=row.delivery_id,
            attempt=row.attempt,
            started_at=row.started_at,
            outcome=AttemptOutcome(row.outcome),
            latency_ms=row.latency_ms,
            status_code=row.status_code,
            response_bytes=row.response_bytes,
            error=row.error,
            sender=row.sender,
        )


class DisabledEndpoint(_View):
    """An endpoint the sender just disabled because it kept failing."""

    subscription_id: str
    channel: str
    url: str
    failing_since: datetime
    disabled_at: datetime
    last_error: str | None
