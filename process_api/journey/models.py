"""The journey of one order as the process API returns it."""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import Field, JsonValue

from contracts import OrderStatus
from contracts.common import ContractModel, UtcDateTime


class JourneyStep(ContractModel):
    """A status change of the order or an event about it, with the request that caused it."""

    kind: Literal["status_change", "event"] = Field(description="What this step records.")
    at: UtcDateTime = Field(description="When it happened (UTC).")
    correlation_id: str | None = Field(
        default=None, max_length=128, description="Correlation id of the request that caused it."
    )
    causation_id: str | None = Field(
        default=None, max_length=128, description="Events: id of what directly caused the event."
    )
    origin_correlation_id: str | None = Field(
        default=None,
        max_length=128,
        description="Events: correlation id of the request that created the order.",
    )
    from_status: OrderStatus | None = Field(default=None, description="Status changes: before.")
    to_status: OrderStatus | None = Field(default=None, description="Status changes: after.")
    actor: str | None = Field(default=None, max_length=128, description="Status changes: by whom.")
    reason: str | None = Field(default=None, description="Status changes: why, when recorded.")
    event_id: UUID | None = Field(default=None, description="Events: the event's id.")
    type: str | None = Field(default=None, max_length=128, description="Events: its type.")
    source: str | None = Field(default=None, max_length=64, description="Events: who emitted it.")
    subject: str | None = Field(default=None, max_length=256, description="Events: its subject.")
    data: dict[str, JsonValue] | None = Field(default=None, description="Events: its payload.")


class OrderJourney(ContractModel):
    """Everything that happened to one order, in order, across every request that touched it."""

    order_id: str = Field(max_length=40, description="The gateway's order id.")
    channel: str = Field(max_length=64, description="Sales channel of the order.")
    channel_order_id: str = Field(max_length=128, description="The channel's order id.")
    status: OrderStatus = Field(description="Current status.")
    origin_correlation_id: str | None = Field(
        default=None, max_length=128, description="Correlation id of the request that created it."
    )
    correlation_ids: list[str] = Field(
        description="Correlation ids of the requests (and continued work) that touched the order, "
        "in the order they first did."
    )
    steps: list[JourneyStep] = Field(description="Status changes and events, oldest first.")
