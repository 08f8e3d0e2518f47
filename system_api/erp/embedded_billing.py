"""Invoices and credit notes of the embedded ERP: posted once per reference, never beyond the
quantities and amounts their documents allow."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from contracts import CreditNote, CreditNoteLine, Money
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceLine,
    InvoiceRequest,
    SalesOrderState,
)
from gateway_infra.unit_of_work import UnitOfWork
from system_api.erp.numbering import next_document_number
from system_api.errors import DocumentNotFound, InvalidDocumentState, QuantityExceeded
from system_api.tables import (
    erp_credit_note_lines,
    erp_credit_notes,
    erp_invoice_lines,
    erp_invoices,
    erp_sales_order_lines,
    erp_sales_orders,
)

SOURCE = "system_api.erp.embedded"


def post_invoice(uow: UnitOfWork, request: InvoiceRequest) -> Invoice:
    conn = uow.conn
    existing = invoice_by(conn, erp_invoices.c.reference == request.reference)
    if existing is not None:
        return existing
    order = conn.execute(
        select(erp_sales_orders).where(erp_sales_orders.c.number == request.sales_order_id)
    ).first()
    if order is None:
        raise DocumentNotFound("sales order", request.sales_order_id)
    if order.state != SalesOrderState.CONFIRMED.value:
        raise InvalidDocumentState(
            f"sales order {order.number} is {order.state}; only confirmed orders are invoiced"
        )
    ordered = {
        row.line_id: row
        for row in conn.execute(
            select(erp_sales_order_lines).where(erp_sales_order_lines.c.sales_order_id == order.id)
        )
    }
    invoiced = _invoiced_quantities(conn, order.id)
    lines: list[dict[str, Any]] = []
    for line in request.lines:
        source = ordered.get(line.line_id)
        if source is None:
            raise InvalidDocumentState(f"sales order {order.number} has no line {line.line_id!r}")
        already = invoiced.get(line.line_id, 0)
        if already + line.quantity > source.quantity:
            raise QuantityExceeded(
                f"line {line.line_id}: {already} of {source.quantity} already invoiced, "
                f"{line.quantity} more requested"
            )
        lines.append(
            {
                "line_id": line.line_id,
                "sku": source.sku,
                "quantity": line.quantity,
                "unit_price": source.unit_price,
                "amount": source.unit_price * line.quantity,
            }
        )
    number = next_document_number(conn, "invoice", "INV-")
    invoice_pk = conn.execute(
        insert(erp_invoices)
        .values(
            number=number,
            sales_order_id=order.id,
            reference=request.reference,
            currency=order.currency,
            total=sum((line["amount"] for line in lines), Decimal(0)),
            posted_at=uow.now,
        )
        .returning(erp_invoices.c.id)
    ).scalar_one()
    conn.execute(insert(erp_invoice_lines), [{"invoice_id": invoice_pk, **line} for line in lines])
    uow.emit(
        "erp.invoice.posted",
        source=SOURCE,
        subject=f"invoice/{number}",
        channel=order.channel,
        data={"invoice_id": number, "sales_order_id": order.number, "reference": request.reference},
    )
    posted = invoice_by(conn, erp_invoices.c.id == invoice_pk)
    assert posted is not None
    return posted


def post_credit_note(uow: UnitOfWork, request: CreditNoteRequest) -> CreditNote:
    conn = uow.conn
    existing = credit_note_by(conn, erp_credit_notes.c.reference == request.reference)
    if existing is not None:
        return existing
    invoice = conn.execute(
        select(erp_invoices).where(erp_invoices.c.number == request.invoice_id)
    ).first()
    if invoice is None:
        raise DocumentNotFound("invoice", request.invoice_id)
    invoiced = {
        row.line_id: row
        for row in conn.execute(
            select(erp_invoice_lines).where(erp_invoice_lines.c.invoice_id == invoice.id)
        )
    }
    credited = _credited(conn, invoice.id)
    for line in request.lines:
        source = invoiced.get(line.line_id)
        if source is None:
            raise InvalidDocumentState(f"invoice {invoice.number} has no line {line.line_id!r}")
        if line.amount.currency != invoice.currency:
            raise InvalidDocumentState(
                f"invoice {invoice.number} is in {invoice.currency}, not {line.amount.currency}"
            )
        quantity_so_far, amount_so_far = credited.get(line.line_id, (0, Decimal(0)))
        if quantity_so_far + line.quantity > source.quantity:
            raise QuantityExceeded(
                f"line {line.line_id}: {quantity_so_far} of {source.quantity} already credited"
            )
        if amount_so_far + line.amount.amount > source.amount:
            raise QuantityExceeded(
                f"line {line.line_id}: crediting {line.amount.amount} would exceed the invoiced "
                f"{source.amount} ({amount_so_far} already credited)"
            )
    number = next_document_number(conn, "credit_note", "CN-")
    credit_pk = conn.execute(
        insert(erp_credit_notes)
        .values(
            number=number,
            invoice_id=invoice.id,
            reference=request.reference,
            currency=invoice.currency,
            total=sum((line.amount.amount for line in request.lines), Decimal(0)),
            reason=request.reason,
            posted_at=uow.now,
        )
        .returning(erp_credit_notes.c.id)
    ).scalar_one()
    conn.execute(
        insert(erp_credit_note_lines),
        [
            {
                "credit_note_id": credit_pk,
                "line_id": line.line_id,
                "quantity": line.quantity,
                "amount": line.amount.amount,
            }
            for line in request.lines
        ],
    )
    uow.emit(
        "erp.credit_note.posted",
        source=SOURCE,
        subject=f"credit_note/{number}",
        data={
            "credit_note_id": number,
            "invoice_id": invoice.number,
            "reference": request.reference,
        },
    )
    posted = credit_note_by(conn, erp_credit_notes.c.id == credit_pk)
    assert posted is not None
    return posted


def has_invoices(conn: Connection, sales_order_pk: int) -> bool:
    count = conn.execute(
        select(func.count()).where(erp_invoices.c.sales_order_id == sales_order_pk)
    ).scalar_one()
    return bool(count)


def _invoiced_quantities(conn: Connection, sales_order_pk: int) -> dict[str, int]:
    rows = conn.execute(
        select(erp_invoice_lines.c.line_id, func.sum(erp_invoice_lines.c.quantity))
        .join(erp_invoices, erp_invoices.c.id == erp_invoice_lines.c.invoice_id)
        .where(erp_invoices.c.sales_order_id == sales_order_pk)
        .group_by(erp_invoice_lines.c.line_id)
    )
    return {line_id: int(quantity) for line_id, quantity in rows}


def _credited(conn: Connection, invoice_pk: int) -> dict[str, tuple[int, Decimal]]:
    rows = conn.execute(
        select(
            erp_credit_note_lines.c.line_id,
            erp_credit_note_lines.c.quantity,
            erp_credit_note_lines.c.amount,
        )
        .join(erp_credit_notes, erp_credit_notes.c.id == erp_credit_note_lines.c.credit_note_id)
        .where(erp_credit_notes.c.invoice_id == invoice_pk)
    )
    totals: dict[str, tuple[int, Decimal]] = {}
    for line_id, quantity, amount in rows:
        q, a = totals.get(line_id, (0, Decimal(0)))
        totals[line_id] = (q + quantity, a + amount)
    return totals


def invoice_by(conn: Connection, condition: Any) -> Invoice | None:
    header = conn.execute(
        select(erp_invoices, erp_sales_orders.c.number.label("sales_order_number"))
        .join(erp_sales_orders, erp_sales_orders.c.id == erp_invoices.c.sales_order_id)
        .where(condition)
    ).first()
    if header is None:
        return None
    lines = conn.execute(
        select(erp_invoice_lines)
        .where(erp_invoice_lines.c.invoice_id == header.id)
        .order_by(erp_invoice_lines.c.line_id)
    ).all()
    return _invoice(header, lines)


def _invoice(header: Row[Any], lines: Sequence[Row[Any]]) -> Invoice:
    currency = header.currency
    return Invoice(
        invoice_id=header.number,
        sales_order_id=header.sales_order_number,
        reference=header.reference,
        currency=currency,
        lines=[
            InvoiceLine(
                line_id=line.line_id,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=Money(amount=line.unit_price, currency=currency),
                amount=Money(amount=line.amount, currency=currency),
            )
            for line in lines
        ],
        total=Money(amount=header.total, currency=currency),
        posted_at=header.posted_at,
    )


def credit_note_by(conn: Connection, condition: Any) -> CreditNote | None:
    header = conn.execute(
        select(
            erp_credit_notes,
            erp_invoices.c.number.label("invoice_number"),
            erp_sales_orders.c.reference.label("order_reference"),
        )
        .join(erp_invoices, erp_invoices.c.id == erp_credit_notes.c.invoice_id)
        .join(erp_sales_orders, erp_sales_orders.c.id == erp_invoices.c.sales_order_id)
        .where(condition)
    ).first()
    if header is None:
        return None
    lines = conn.execute(
        select(erp_credit_note_lines)
        .where(erp_credit_note_lines.c.credit_note_id == header.id)
        .order_by(erp_credit_note_lines.c.line_id)
    ).all()
    currency = header.currency
    return CreditNote(
        credit_note_id=header.number,
        invoice_id=header.invoice_number,
        order_id=header.order_reference,
        lines=[
            CreditNoteLine(
                line_id=line.line_id,
                quantity=line.quantity,
                amount=Money(amount=line.amount, currency=currency),
            )
            for line in lines
        ],
        total=Money(amount=header.total, currency=currency),
        reason=header.reason,
    )
