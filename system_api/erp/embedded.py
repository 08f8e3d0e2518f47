"""The embedded reference ERP: item master, price list and sales orders in the gateway's database.

It makes the gateway useful out of the box and is the reference every other ERP adapter is held to.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Select, bindparam, insert, select, update

from contracts import (
    CreditNote,
    Customer,
    LineRejection,
    Money,
    OrderLine,
    Product,
    ProductStatus,
    RejectionReason,
)
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceRequest,
    SalesOrder,
    SalesOrderDecision,
    SalesOrderRequest,
    SalesOrderState,
)
from gateway_infra.unit_of_work import Store, UnitOfWork
from system_api.erp.customers import customer_by_id, resolve_customer
from system_api.erp.embedded_billing import (
    has_invoices,
    invoice_by,
    post_credit_note,
    post_invoice,
)
from system_api.erp.numbering import next_document_number
from system_api.errors import DocumentNotFound, InvalidDocumentState
from system_api.tables import (
    erp_invoices,
    erp_products,
    erp_sales_order_lines,
    erp_sales_orders,
)

# The statements of a sales order's creation, built once with their values as parameters (building
# them anew cost more than running them; every partner order creates a sales order).
_SALES_ORDER_BY_REFERENCE = select(erp_sales_orders).where(
    erp_sales_orders.c.reference == bindparam("b_value")
)
_SALES_ORDER_BY_ID = select(erp_sales_orders).where(erp_sales_orders.c.id == bindparam("b_value"))
_SALES_ORDER_BY_NUMBER = select(erp_sales_orders).where(
    erp_sales_orders.c.number == bindparam("b_value")
)
_SALES_ORDER_LINES = (
    select(erp_sales_order_lines)
    .where(erp_sales_order_lines.c.sales_order_id == bindparam("b_sales_order_id"))
    .order_by(erp_sales_order_lines.c.line_id)
)
_PRODUCTS_OF = select(erp_products).where(
    erp_products.c.sku.in_(bindparam("b_skus", expanding=True))
)
_INSERT_SALES_ORDER = insert(erp_sales_orders).returning(erp_sales_orders.c.id)
_INSERT_SALES_ORDER_LINES = insert(erp_sales_order_lines)

SOURCE = "system_api.erp.embedded"


class EmbeddedErp:
    """ErpPort over the gateway's own tables."""

    name = "embedded"

    def __init__(self, store: Store, *, price_tolerance: Decimal = Decimal("0.01")) -> None:
        self.store = store
        self.price_tolerance = price_tolerance

    async def get_product(self, sku: str) -> Product | None:
        return await self.store.read(lambda conn: _product(conn, sku))

    async def list_products(self, *, after: str | None = None, limit: int = 100) -> list[Product]:
        def query(conn: Connection) -> list[Product]:
            stmt = select(erp_products).order_by(erp_products.c.sku).limit(limit)
            if after is not None:
                stmt = stmt.where(erp_products.c.sku > after)
            return [_row_to_product(row) for row in conn.execute(stmt)]

        return await self.store.read(query)

    async def upsert_products(self, products: Iterable[Product]) -> int:
        """Create or update item master records (the ERP owns them; used by set-up and seeding)."""
        items = list(products)
        return await self.store.write(lambda uow: upsert_products(uow, items))

    async def create_sales_order(self, request: SalesOrderRequest) -> SalesOrderDecision:
        return await self.store.write(lambda uow: self._create_sales_order(uow, request))

    def _create_sales_order(
        self, uow: UnitOfWork, request: SalesOrderRequest
    ) -> SalesOrderDecision:
        conn = uow.conn
        existing = _sales_order_by(conn, _SALES_ORDER_BY_REFERENCE, request.reference)
        if existing is not None:
            return SalesOrderDecision(accepted=True, sales_order=existing)
        rejections = self._check_lines(conn, request)
        if rejections:
            return SalesOrderDecision(accepted=False, rejections=rejections)
        customer_id = resolve_customer(uow, request.customer) if request.customer else None
        number = next_document_number(conn, "sales_order", "SO-")
        total = sum((line.unit_price.amount * line.quantity for line in request.lines), Decimal(0))
        sales_order_pk = conn.execute(
            _INSERT_SALES_ORDER,
            {
                "number": number,
                "reference": request.reference,
                "channel": request.channel,
                "state": SalesOrderState.QUOTATION.value,
                "currency": request.currency,
                "total": total,
                "customer_id": customer_id,
                "created_at": uow.now,
                "updated_at": uow.now,
            },
        ).scalar_one()
        conn.execute(
            _INSERT_SALES_ORDER_LINES,
            [
                {
                    "sales_order_id": sales_order_pk,
                    "line_id": line.line_id,
                    "sku": line.sku,
                    "quantity": line.quantity,
                    "unit_price": line.unit_price.amount,
                }
                for line in request.lines
            ],
        )
        uow.emit(
            "erp.sales_order.created",
            source=SOURCE,
            subject=f"sales_order/{number}",
            channel=request.channel,
            data={"sales_order_id": number, "reference": request.reference},
        )
        created = _sales_order_by(conn, _SALES_ORDER_BY_ID, sales_order_pk)
        assert created is not None
        return SalesOrderDecision(accepted=True, sales_order=created)

    def _check_lines(self, conn: Connection, request: SalesOrderRequest) -> list[LineRejection]:
        skus = {line.sku for line in request.lines}
        products = {
            row.sku: _row_to_product(row)
            for row in conn.execute(_PRODUCTS_OF, {"b_skus": sorted(skus)})
        }
        rejections: list[LineRejection] = []
        for line in request.lines:
            rejection = self._check_line(line, products.get(line.sku))
            if rejection is not None:
                rejections.append(rejection)
        return rejections

    def _check_line(self, line: OrderLine, product: Product | None) -> LineRejection | None:
        def reject(reason: RejectionReason, detail: str) -> LineRejection:
            return LineRejection(line_id=line.line_id, reason=reason, detail=detail)

        if product is None:
            return reject(RejectionReason.UNKNOWN_SKU, f"SKU {line.sku} is not in the item master")
        if product.status is not ProductStatus.ACTIVE:
            return reject(RejectionReason.INACTIVE_SKU, f"SKU {line.sku} is {product.status}")
        if line.unit_price.currency != product.list_price.currency:
            return reject(
                RejectionReason.CURRENCY_MISMATCH,
                f"price list is in {product.list_price.currency}, "
                f"line is in {line.unit_price.currency}",
            )
        difference = abs(line.unit_price.amount - product.list_price.amount)
        if difference > self.price_tolerance:
            return reject(
                RejectionReason.PRICE_MISMATCH,
                f"unit price {line.unit_price.amount} differs from list price "
                f"{product.list_price.amount} by more than {self.price_tolerance}",
            )
        return None

    async def get_sales_order(self, sales_order_id: str) -> SalesOrder | None:
        return await self.store.read(
            lambda conn: _sales_order_by(conn, _SALES_ORDER_BY_NUMBER, sales_order_id)
        )

    async def confirm_sales_order(self, sales_order_id: str) -> SalesOrder:
        return await self.store.write(
            lambda uow: self._move(uow, sales_order_id, SalesOrderState.CONFIRMED)
        )

    async def cancel_sales_order(self, sales_order_id: str) -> SalesOrder:
        return await self.store.write(
            lambda uow: self._move(uow, sales_order_id, SalesOrderState.CANCELLED)
        )

    def _move(self, uow: UnitOfWork, sales_order_id: str, target: SalesOrderState) -> SalesOrder:
        conn = uow.conn
        row = conn.execute(
            select(erp_sales_orders).where(erp_sales_orders.c.number == sales_order_id)
        ).first()
        if row is None:
            raise DocumentNotFound("sales order", sales_order_id)
        state = SalesOrderState(row.state)
        if state is not target:
            if state is SalesOrderState.CANCELLED:
                raise InvalidDocumentState(f"sales order {sales_order_id} is cancelled")
            if target is SalesOrderState.CANCELLED and has_invoices(conn, row.id):
                raise InvalidDocumentState(f"sales order {sales_order_id} is invoiced")
            conn.execute(
                update(erp_sales_orders)
                .where(erp_sales_orders.c.id == row.id)
                .values(state=target.value, updated_at=uow.now)
            )
            uow.emit(
                f"erp.sales_order.{target.value}",
                source=SOURCE,
                subject=f"sales_order/{sales_order_id}",
                channel=row.channel,
                data={"sales_order_id": sales_order_id, "reference": row.reference},
            )
        moved = _sales_order_by(conn, _SALES_ORDER_BY_ID, row.id)
        assert moved is not None
        return moved

    async def get_customer(self, customer_id: str) -> Customer | None:
        return await self.store.read(lambda conn: customer_by_id(conn, customer_id))

    async def post_invoice(self, request: InvoiceRequest) -> Invoice:
        return await self.store.write(lambda uow: post_invoice(uow, request))

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        return await self.store.read(
            lambda conn: invoice_by(conn, erp_invoices.c.number == invoice_id)
        )

    async def post_credit_note(self, request: CreditNoteRequest) -> CreditNote:
        return await self.store.write(lambda uow: post_credit_note(uow, request))


def upsert_products(uow: UnitOfWork, products: list[Product]) -> int:
    conn = uow.conn
    known = set(
        conn.execute(
            select(erp_products.c.sku).where(erp_products.c.sku.in_([p.sku for p in products]))
        ).scalars()
    )
    for product in products:
        values = {
            "name": product.name,
            "status": product.status.value,
            "tax_class": product.tax_class,
            "list_price": product.list_price.amount,
            "currency": product.list_price.currency,
            "updated_at": uow.now,
        }
        if product.sku in known:
            conn.execute(
                update(erp_products).where(erp_products.c.sku == product.sku).values(values)
            )
        else:
            conn.execute(insert(erp_products).values(sku=product.sku, **values))
    return len(products)


def _product(conn: Connection, sku: str) -> Product | None:
    row = conn.execute(select(erp_products).where(erp_products.c.sku == sku)).first()
    return None if row is None else _row_to_product(row)


def _row_to_product(row: object) -> Product:
    r = row._mapping  # type: ignore[attr-defined]
    return Product(
        sku=r["sku"],
        name=r["name"],
        status=ProductStatus(r["status"]),
        tax_class=r["tax_class"],
        list_price=Money(amount=r["list_price"], currency=r["currency"]),
    )


def _sales_order_by(conn: Connection, query: Select[Any], value: object) -> SalesOrder | None:
    """The sales order the query (one of the _SALES_ORDER_BY_ statements) finds by value."""
    header = conn.execute(query, {"b_value": value}).first()
    if header is None:
        return None
    lines = conn.execute(_SALES_ORDER_LINES, {"b_sales_order_id": header.id})
    return SalesOrder(
        sales_order_id=header.number,
        reference=header.reference,
        channel=header.channel,
        state=SalesOrderState(header.state),
        currency=header.currency,
        customer_id=header.customer_id,
        lines=[
            OrderLine(
                line_id=line.line_id,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=Money(amount=line.unit_price, currency=header.currency),
            )
            for line in lines
        ],
        total=Money(amount=header.total, currency=header.currency),
        created_at=header.created_at,
    )
