"""The backends the conformance suite runs against, and how it looks inside each of them.

Every test gets a BackendUnderTest: the ERP and WMS ports of one adapter, and a probe that
checks results through the backend itself (SQL for the embedded backend, a separate JSON-RPC
session for Tryton), not through the adapter under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select

from gateway_infra.database import Database
from system_api.erp.port import ErpPort
from system_api.tables import (
    erp_credit_notes,
    erp_invoices,
    erp_sales_orders,
    wms_fulfilments,
    wms_packages,
    wms_stock,
)
from system_api.wms.port import WmsPort

# The catalogue every backend under test is seeded with.
CATALOGUE: dict[str, Decimal] = {
    "MUG-RED-350": Decimal("12.90"),
    "TEE-ORG-M": Decimal("24.00"),
    "LAMP-DESK-01": Decimal("59.00"),
}
INACTIVE_SKU = "VASE-OLD-01"
WAREHOUSE = "WH"


class BackendProbe(Protocol):
    """Reads the backend's own records."""

    def sales_orders(self, reference: str) -> list[tuple[str, str]]:
        """(number, state) of every sales order recorded with this reference."""
        ...

    def on_hand(self, sku: str, warehouse: str) -> int: ...

    def invoice_total(self, invoice_id: str) -> Decimal | None: ...

    def credit_note_total(self, credit_note_id: str) -> Decimal | None: ...

    def package_references(self, fulfilment_id: str) -> list[str]: ...


@dataclass
class BackendUnderTest:
    name: str
    erp: ErpPort
    wms: WmsPort
    probe: BackendProbe


class EmbeddedProbe:
    """Looks straight into the embedded backend's tables."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def sales_orders(self, reference: str) -> list[tuple[str, str]]:
        rows = self.database.run_read(
            lambda conn: conn.execute(
                select(erp_sales_orders.c.number, erp_sales_orders.c.state).where(
                    erp_sales_orders.c.reference == reference
                )
            ).all()
        )
        return [(row.number, row.state) for row in rows]

    def on_hand(self, sku: str, warehouse: str) -> int:
        value = self.database.run_read(
            lambda conn: conn.execute(
                select(wms_stock.c.on_hand).where(
                    wms_stock.c.sku == sku, wms_stock.c.warehouse == warehouse
                )
            ).scalar_one_or_none()
        )
        return int(value or 0)

    def invoice_total(self, invoice_id: str) -> Decimal | None:
        value = self.database.run_read(
            lambda conn: conn.execute(
                select(erp_invoices.c.total).where(erp_invoices.c.number == invoice_id)
            ).scalar_one_or_none()
        )
        return None if value is None else Decimal(value)

    def credit_note_total(self, credit_note_id: str) -> Decimal | None:
        value = self.database.run_read(
            lambda conn: conn.execute(
                select(erp_credit_notes.c.total).where(erp_credit_notes.c.number == credit_note_id)
            ).scalar_one_or_none()
        )
        return None if value is None else Decimal(value)

    def package_references(self, fulfilment_id: str) -> list[str]:
        rows = self.database.run_read(
            lambda conn: conn.execute(
                select(wms_packages.c.package_reference)
                .join(wms_fulfilments, wms_fulfilments.c.id == wms_packages.c.fulfilment_id)
                .where(wms_fulfilments.c.fulfilment_id == fulfilment_id)
                .order_by(wms_packages.c.package_reference)
            ).scalars()
        )
        return list(rows)
