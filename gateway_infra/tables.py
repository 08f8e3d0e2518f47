"""Tables the infrastructure owns (prefix infra_): the outbox and the scheduler's timers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from gateway_infra.columns import UtcDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def layer_metadata() -> MetaData:
    """A MetaData with the naming convention every layer uses, so migrations name constraints."""
    return MetaData(naming_convention=NAMING_CONVENTION)


metadata = layer_metadata()

# BigInteger on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def _where(condition: str) -> dict[str, Any]:
    """The keyword arguments of a partial index on both databases."""
    return {"postgresql_where": text(condition), "sqlite_where": text(condition)}


outbox = Table(
    "infra_outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # The event's envelope is these columns and data, in the contract's field order (see
    # gateway_infra.outbox.envelope_of): no field is stored twice.
    Column("event_id", String(36), nullable=False, unique=True),
    Column("type", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("source", String(40), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("channel", String(64), nullable=True),
    Column("correlation_id", String(128), nullable=True),
    Column("causation_id", String(128), nullable=True),
    # The order the event concerns and the correlation id of the request that created it, so
    # one order's journey is found across requests (see process_api.journey).
    Column("order_id", String(40), nullable=True),
    Column("origin_correlation_id", String(128), nullable=True),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("data", JSON, nullable=False),
    # Commit order: assigned after commit by the one sequencer (see gateway_infra.outbox), so a
    # reader that pages by position never skips an event committed late with a lower id.
    Column("position", BigInteger, nullable=True),
    # Indexes only over the rows that have the value: an event is written without a position
    # (and most without an order), and an entry per such row was work for nothing.
    Index("ix_infra_outbox_order_id", "order_id", "id", **_where("order_id IS NOT NULL")),
    Index("ix_infra_outbox_position", "position", unique=True, **_where("position IS NOT NULL")),
    Index(
        "ix_infra_outbox_channel_position", "channel", "position", **_where("position IS NOT NULL")
    ),
    Index("ix_infra_outbox_unsequenced", "id", **_where("position IS NULL")),
)

outbox_purges = Table(
    "infra_outbox_purges",
    metadata,
    # "events" for all events, "events:<channel>" for one channel's.
    Column("name", String(80), primary_key=True),
    # Every event at or below this position that was purged is gone; a feed cursor below it may
    # have missed some (gateway_infra.event_retention).
    Column("purged_through", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

timers = Table(
    "infra_timers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("kind", String(64), nullable=False),
    Column("key", String(200), nullable=False),
    Column("due_at", UtcDateTime(), nullable=False),
    Column("payload", JSON, nullable=False),
    # The correlation id of the work that scheduled it: the timer's run carries it on.
    Column("correlation_id", String(128), nullable=True),
    Column("state", String(16), nullable=False, server_default="pending"),
    Column("generation", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    UniqueConstraint("kind", "key", name="uq_infra_timers_kind_key"),
    Index("ix_infra_timers_state_due_at", "state", "due_at"),
)

oauth_clients = Table(
    "infra_oauth_clients",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("channel", String(64), nullable=True),
    Column("scopes", Text, nullable=False),
    Column("throttle_tier", String(32), nullable=False),
    Column("secret_digest", String(64), nullable=False),
    Column("disabled_at", UtcDateTime(), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

signing_keys = Table(
    "infra_signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("private_key", Text, nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("activated_at", UtcDateTime(), nullable=True),
    Column("retired_at", UtcDateTime(), nullable=True),
    Index("ix_infra_signing_keys_state", "state"),
)
