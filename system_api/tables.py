"""Tables of the embedded reference ERP and WMS (prefix sys_): the system layer's own store."""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
)

from gateway_infra.columns import MoneyAmount, UtcDateTime
from gateway_infra.tables import BigId, layer_metadata

metadata = layer_metadata()

document_sequences = Table(
    "sys_document_sequences",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("prefix", String(16), nullable=False),
    Column("next_value", Integer, nullable=False),
)

erp_products = Table(
    "sys_erp_products",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("tax_class", String(32), nullable=False),
    Column("list_price", MoneyAmount(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

erp_sales_orders = Table(
    "sys_erp_sales_orders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("reference", String(128), nullable=False, unique=True),
    Column("channel", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("total", MoneyAmount(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

erp_sales_order_lines = Table(
    "sys_erp_sales_order_lines",
    metadata,
    Column("sales_order_id", BigId, ForeignKey("sys_erp_sales_orders.id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("sku", String(64), ForeignKey("sys_erp_products.sku"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", MoneyAmount(), nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)
