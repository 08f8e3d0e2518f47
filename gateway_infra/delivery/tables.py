"""Tables of webhook delivery (prefix infra_webhook_): subscriptions, the relay's cursor,
deliveries (one per subscription and event) and every attempt made to send one."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway_infra.columns import UtcDateTime
from gateway_infra.tables import BigId, layer_metadata

metadata = layer_metadata()

subscriptions = Table(
    "infra_webhook_subscriptions",
    metadata,
    Column("subscription_id", String(40), primary_key=True),
    Column("channel", String(64), nullable=False),
    # The partner client that created it; None when an operator added it from the command line.
    Column("client_id", String(64), nullable=True),
    Column("url", Text, nullable=False),
    Column("event_types", JSON, nullable=False),
    Column("description", String(200), nullable=True),
    # active, disabled (by an operator or after failing too long) or deleted (kept for history).
    Column("state", String(16), nullable=False),
    Column("disabled_reason", Text, nullable=True),
    # Start of the current run of failed attempts; cleared by the next success.
    Column("failing_since", UtcDateTime(), nullable=True),
    # Signing secrets, encrypted (SecretBox); the previous one signs too until it expires.
    Column("secret", Text, nullable=False),
    Column("secret_version", Integer, nullable=False),
    Column("previous_secret", Text, nullable=True),
    Column("previous_secret_expires_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Index("ix_infra_webhook_subscriptions_channel_state", "channel", "state"),
)

relay_cursors = Table(
    "infra_webhook_relay_cursors",
    metadata,
    Column("name", String(40), primary_key=True),
    # The outbox position up to which events have been turned into deliveries.
    Column("position", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

deliveries = Table(
    "infra_webhook_deliveries",
    metadata,
    Column("delivery_id", BigId, primary_key=True, autoincrement=True),
    Column(
        "subscription_id",
        String(40),
        ForeignKey("infra_webhook_subscriptions.subscription_id"),
        nullable=False,
    ),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("channel", String(64), nullable=False),
    # Order key: deliveries of one subscription and subject go out in position order.
    Column("subject", String(200), nullable=False),
    Column("position", BigInteger, nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    # pending, delivered, dead (dead letter) or cancelled (its subscription was deleted).
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    # When the current series of attempts began (creation, replay or resend): its maximum age.
    Column("series_started_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("delivered_at", UtcDateTime(), nullable=True),
    Column("dead_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint(
        "subscription_id", "event_id", name="uq_infra_webhook_deliveries_subscription_event"
    ),
    Index("ix_infra_webhook_deliveries_state_due", "state", "next_attempt_at"),
    Index("ix_infra_webhook_deliveries_order", "subscription_id", "subject", "position"),
    Index("ix_infra_webhook_deliveries_channel_state", "channel", "state"),
    # The event purge keeps the events of pending and dead deliveries (they are sent from them).
    Index("ix_infra_webhook_deliveries_event_state", "event_id", "state"),
)

attempts = Table(
    "infra_webhook_attempts",
    metadata,
    Column("attempt_id", BigId, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        BigInteger,
        ForeignKey("infra_webhook_deliveries.delivery_id"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
    # succeeded, failed or refused (the destination address is not allowed).
    Column("outcome", String(16), nullable=False),
    Column("latency_ms", Integer, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("response_bytes", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("sender", String(64), nullable=False),
    Index("ix_infra_webhook_attempts_delivery", "delivery_id", "attempt_id"),
)
