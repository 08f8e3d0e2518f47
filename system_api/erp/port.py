"""The ERP port: what the process layer may ask of the ERP, whatever ERP and transport serve it."""

from __future__ import annotations

from typing import Protocol

from contracts import Product
from contracts.erp import SalesOrder, SalesOrderDecision, SalesOrderRequest


class ErpPort(Protocol):
    """ERP capabilities; implemented by each backend adapter and by the HTTP client."""

    async def get_product(self, sku: str) -> Product | None:
        """The item master record of a SKU, or None when the ERP does not know it."""
        ...

    async def list_products(self, *, after: str | None = None, limit: int = 100) -> list[Product]:
        """Item master records ordered by SKU, starting after the given SKU."""
        ...

    async def create_sales_order(self, request: SalesOrderRequest) -> SalesOrderDecision:
        """Validate lines against item master and price list and record the sales order.

        Idempotent by request.reference: asking again returns the sales order already recorded.
        """
        ...

    async def get_sales_order(self, sales_order_id: str) -> SalesOrder | None:
        """A sales order by the ERP's number, or None."""
        ...
