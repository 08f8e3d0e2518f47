"""Tables the partner edge owns (prefix partner_): idempotency records of partner requests."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Index, Integer, LargeBinary, String, Table

from gateway_infra.columns import UtcDateTime
from gateway_infra.tables import layer_metadata

metadata = layer_metadata()

idempotency_keys = Table(
    "partner_idempotency_keys",
    metadata,
    Column("client_id", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("lease_until", UtcDateTime(), nullable=True),
    Column("lease_token", String(32), nullable=True),
    Column("status_code", Integer, nullable=True),
    Column("response_headers", JSON, nullable=True),
    Column("response_body", LargeBinary, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime(), nullable=True),
    Column("expires_at", UtcDateTime(), nullable=False),
    Index("ix_partner_idempotency_keys_expires_at", "expires_at"),
)
