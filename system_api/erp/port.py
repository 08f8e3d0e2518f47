"""The ERP port: what the process layer may ask of the ERP, whatever ERP and transport serve it."""

from __future__ import annotations

from typing import Protocol

from contracts import CreditNote, Customer, Product
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceRequest,
    SalesOrder,
    SalesOrderDecision,
    SalesOrderRequest,
)


class ErpPort(Protocol):
    """ERP capabilities; implemented by each backend adapter and by the HTTP client."""

    name: str

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

    async def confirm_sales_order(self, sales_order_id: str) -> SalesOrder:
        """Confirm a quotation (idempotent); InvalidDocumentState when it was cancelled."""
        ...

    async def cancel_sales_order(self, sales_order_id: str) -> SalesOrder:
        """Cancel a sales order (idempotent); InvalidDocumentState once it is invoiced."""
        ...

    async def get_customer(self, customer_id: str) -> Customer | None:
        """The ERP's party by its id."""
        ...

    async def post_invoice(self, request: InvoiceRequest) -> Invoice:
        """Post an invoice for shipped quantities of a confirmed order; once per reference.

        QuantityExceeded when a line would be invoiced beyond its ordered quantity.
        """
        ...

    async def get_invoice(self, invoice_id: str) -> Invoice | None: ...

    async def post_credit_note(self, request: CreditNoteRequest) -> CreditNote:
        """Credit lines of a posted invoice, once per reference; never beyond what was invoiced."""
        ...
