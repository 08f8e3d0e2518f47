"""Tables of the embedded reference ERP and WMS (prefix sys_): the system layer's own store."""

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
    UniqueConstraint,
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
    Column("customer_id", String(32), nullable=True),
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

erp_customers = Table(
    "sys_erp_customers",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("customer_id", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("email", String(254), nullable=True, unique=True),
    Column("phone", String(64), nullable=True),
    Column("billing_address", JSON, nullable=True),
    Column("shipping_address", JSON, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
)

erp_invoices = Table(
    "sys_erp_invoices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("sales_order_id", BigId, ForeignKey("sys_erp_sales_orders.id"), nullable=False),
    Column("reference", String(128), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("total", MoneyAmount(), nullable=False),
    Column("posted_at", UtcDateTime(), nullable=False),
)

erp_invoice_lines = Table(
    "sys_erp_invoice_lines",
    metadata,
    Column("invoice_id", BigId, ForeignKey("sys_erp_invoices.id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price", MoneyAmount(), nullable=False),
    Column("amount", MoneyAmount(), nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

erp_credit_notes = Table(
    "sys_erp_credit_notes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("number", String(32), nullable=False, unique=True),
    Column("invoice_id", BigId, ForeignKey("sys_erp_invoices.id"), nullable=False),
    Column("reference", String(128), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("total", MoneyAmount(), nullable=False),
    Column("reason", String(500), nullable=False),
    Column("posted_at", UtcDateTime(), nullable=False),
)

erp_credit_note_lines = Table(
    "sys_erp_credit_note_lines",
    metadata,
    Column("credit_note_id", BigId, ForeignKey("sys_erp_credit_notes.id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("quantity", Integer, nullable=False),
    Column("amount", MoneyAmount(), nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

# ---------------------------------------------------------------- embedded WMS

wms_warehouses = Table(
    "sys_wms_warehouses",
    metadata,
    Column("code", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
)

wms_stock = Table(
    "sys_wms_stock",
    metadata,
    Column("sku", String(64), primary_key=True),
    Column("warehouse", String(64), ForeignKey("sys_wms_warehouses.code"), primary_key=True),
    Column("on_hand", Integer, nullable=False),
    Column("quarantined", Integer, nullable=False, server_default="0"),
    Column("updated_at", UtcDateTime(), nullable=False),
    CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
    CheckConstraint("quarantined >= 0", name="quarantined_not_negative"),
)

wms_ledger = Table(
    "sys_wms_ledger",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("sku", String(64), nullable=False),
    Column("warehouse", String(64), nullable=False),
    Column("bucket", String(16), nullable=False),
    Column("delta", Integer, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("reference", String(300), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    UniqueConstraint("sku", "warehouse", "reason", "reference", name="uq_sys_wms_ledger_entry"),
    Index("ix_sys_wms_ledger_sku_warehouse", "sku", "warehouse"),
)

wms_fulfilments = Table(
    "sys_wms_fulfilments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("fulfilment_id", String(32), nullable=False, unique=True),
    Column("order_reference", String(128), nullable=False, unique=True),
    Column("warehouse", String(64), ForeignKey("sys_wms_warehouses.code"), nullable=False),
    Column("state", String(24), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("completed_at", UtcDateTime(), nullable=True),
)

wms_fulfilment_lines = Table(
    "sys_wms_fulfilment_lines",
    metadata,
    Column("fulfilment_id", BigId, ForeignKey("sys_wms_fulfilments.id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("shipped_quantity", Integer, nullable=False, server_default="0"),
    CheckConstraint("shipped_quantity >= 0", name="shipped_not_negative"),
    CheckConstraint("shipped_quantity <= quantity", name="shipped_within_ordered"),
)

wms_packages = Table(
    "sys_wms_packages",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("fulfilment_id", BigId, ForeignKey("sys_wms_fulfilments.id"), nullable=False),
    Column("package_reference", String(128), nullable=False),
    Column("carrier", String(64), nullable=False),
    Column("tracking_number", String(128), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    UniqueConstraint("fulfilment_id", "package_reference", name="uq_sys_wms_packages_reference"),
)

wms_package_lines = Table(
    "sys_wms_package_lines",
    metadata,
    Column("package_id", BigId, ForeignKey("sys_wms_packages.id"), primary_key=True),
    Column("line_id", String(64), primary_key=True),
    Column("sku", String(64), nullable=False),
    Column("quantity", Integer, nullable=False),
    CheckConstraint("quantity > 0", name="quantity_positive"),
)

wms_return_receipts = Table(
    "sys_wms_return_receipts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("receipt_id", String(32), nullable=False, unique=True),
    Column("rma_reference", String(128), nullable=False, unique=True),
    Column("order_reference", String(128), nullable=False),
    Column("warehouse", String(64), ForeignKey("sys_wms_warehouses.code"), nullable=False),
    Column("lines", JSON, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
)

wms_inspections = Table(
    "sys_wms_inspections",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("rma_reference", String(128), nullable=False, unique=True),
    Column("warehouse", String(64), nullable=False),
    Column("lines", JSON, nullable=False),
    Column("inspected_at", UtcDateTime(), nullable=False),
)
