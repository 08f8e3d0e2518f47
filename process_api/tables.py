"""Tables the process layer owns (prefix proc_): workflow state of orders and their history."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from gateway_infra.columns import MoneyAmount, UtcDateTime
from gateway_infra.tables import BigId, layer_metadata

metadata = layer_metadata()

orders = Table(
    "proc_orders",
    metadata,
    Column("order_id", String(40), primary_key=True),
    Column("channel", String(64), nullable=False),
    Column("channel_order_id", String(128), nullable=False),
    Column("status", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", MoneyAmount(), nullable=False),
    Column("customer", JSON, nullable=True),
    Column("shipping_address", JSON, nullable=True),
    Column("placed_at", UtcDateTime(), nullable=True),
    Column("erp_sales_order_id", String(128), nullable=True),
    Column("origin_correlation_id", String(128), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("channel", "channel_order_id", name="uq_proc_orders_channel_order"),
    Index("ix_proc_orders_channel_updated_at", "channel", "updated_at"),
)

order_lines = Table(
    "proc_order_lines",
    metadata,
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", MoneyAmount(), nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

order_history = Table(
    "proc_order_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), nullable=False),
    Column("from_status", String(24), nullable=True),
    Column("to_status", String(24), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("actor", String(128), nullable=False),
    Column("correlation_id", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Index("ix_proc_order_history_order_id", "order_id", "id"),
)

order_rejections = Table(
    "proc_order_rejections",
    metadata,
    Column("order_id", String(40), ForeignKey("proc_orders.order_id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
)
