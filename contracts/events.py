"""The envelope in which every domain event is published, e.g. ``order.accepted``."""

from uuid import UUID, uuid4

from pydantic import Field, JsonValue

from contracts.common import ChannelCode, ContractModel, UtcDateTime

__all__ = ["EVENT_TYPE_PATTERN", "EventEnvelope"]

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class EventEnvelope(ContractModel):
    """Metadata common to all events, wrapping an event-specific ``data`` payload."""

    id: UUID = Field(default_factory=uuid4, description="Unique event id; consumers dedupe on it.")
    type: str = Field(
        max_length=128,
        pattern=EVENT_TYPE_PATTERN,
        description="Dotted event type, object first, e.g. order.accepted.",
    )
    version: int = Field(default=1, ge=1, description="Schema version of data for this type.")
    occurred_at: UtcDateTime = Field(description="When the event happened (UTC).")
    correlation_id: str | None = Field(
        default=None, max_length=128, description="Id shared by everything one request caused."
    )
    causation_id: str | None = Field(
        default=None, max_length=128, description="Id of the message that directly caused this."
    )
    origin_correlation_id: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "For an event about an order: the correlation id of the request that created the "
            "order, shared by every event of the order's journey."
        ),
    )
    source: str = Field(
        min_length=1, max_length=64, description="Emitting component, e.g. process_api."
    )
    subject: str = Field(
        min_length=1, max_length=256, description="Object concerned, e.g. order/ord_123."
    )
    channel: ChannelCode | None = Field(default=None, description="Sales channel, if any.")
    data: dict[str, JsonValue] = Field(
        default_factory=dict, description="Event payload; its shape depends on type and version."
    )
