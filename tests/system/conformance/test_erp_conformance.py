"""ERP conformance: every ERP adapter behaves the same, checked inside the backend itself."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from contracts import Customer, Money, OrderLine, ProductStatus, RejectionReason
from contracts.erp import (
    CreditNoteRequest,
    InvoiceLineRequest,
    InvoiceRequest,
    SalesOrderRequest,
    SalesOrderState,
)
from contracts.refund import CreditNoteLine
from system_api.errors import DocumentNotFound, InvalidDocumentState, QuantityExceeded
from tests.system.conformance.backends import CATALOGUE, INACTIVE_SKU, BackendUnderTest


def eur(amount: str | Decimal) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def sales_order_request(
    *lines: tuple[str, int, str], reference: str | None = None
) -> SalesOrderRequest:
    return SalesOrderRequest(
        reference=reference or f"ord_{uuid.uuid4().hex[:12]}",
        channel="webshop",
        currency="EUR",
        customer=Customer(name="Ada Lovelace", email=f"ada-{uuid.uuid4().hex[:8]}@example.com"),
        lines=[
            OrderLine(line_id=str(i), sku=sku, quantity=qty, unit_price=eur(price))
            for i, (sku, qty, price) in enumerate(lines, start=1)
        ],
    )


async def confirmed_order(backend: BackendUnderTest, *lines: tuple[str, int, str]) -> str:
    decision = await backend.erp.create_sales_order(sales_order_request(*lines))
    assert decision.sales_order is not None
    await backend.erp.confirm_sales_order(decision.sales_order.sales_order_id)
    return decision.sales_order.sales_order_id


async def test_known_products_are_read_with_their_list_price(backend: BackendUnderTest) -> None:
    product = await backend.erp.get_product("MUG-RED-350")
    missing = await backend.erp.get_product("NO-SUCH-SKU")

    assert product is not None
    assert product.status is ProductStatus.ACTIVE
    assert product.list_price == eur(CATALOGUE["MUG-RED-350"])
    assert missing is None


async def test_products_are_listed_by_sku_page_by_page(backend: BackendUnderTest) -> None:
    first = await backend.erp.list_products(limit=2)
    rest = await backend.erp.list_products(after=first[-1].sku, limit=100)

    skus = [p.sku for p in first + rest]
    assert skus == sorted(skus)
    assert set(CATALOGUE) <= set(skus)


async def test_a_valid_sales_order_is_recorded_once_as_a_quotation(
    backend: BackendUnderTest,
) -> None:
    request = sales_order_request(("MUG-RED-350", 2, "12.90"), ("TEE-ORG-M", 1, "24.00"))

    decision = await backend.erp.create_sales_order(request)
    again = await backend.erp.create_sales_order(request)

    assert decision.accepted and decision.sales_order is not None
    order = decision.sales_order
    assert order.state is SalesOrderState.QUOTATION
    assert order.total == eur("49.80")
    assert again.sales_order is not None
    assert again.sales_order.sales_order_id == order.sales_order_id
    assert backend.probe.sales_orders(request.reference) == [(order.sales_order_id, "quotation")]


async def test_lines_the_erp_refuses_are_listed_with_a_reason_each_and_nothing_is_recorded(
    backend: BackendUnderTest,
) -> None:
    request = sales_order_request(
        ("NO-SUCH-SKU", 1, "1.00"),
        ("MUG-RED-350", 1, "9.99"),
        (INACTIVE_SKU, 1, "30.00"),
        ("TEE-ORG-M", 1, "24.00"),
    )

    decision = await backend.erp.create_sales_order(request)

    assert not decision.accepted
    assert {(r.line_id, r.reason) for r in decision.rejections} == {
        ("1", RejectionReason.UNKNOWN_SKU),
        ("2", RejectionReason.PRICE_MISMATCH),
        ("3", RejectionReason.INACTIVE_SKU),
    }
    assert backend.probe.sales_orders(request.reference) == []


async def test_the_buyer_becomes_a_customer_of_the_erp(backend: BackendUnderTest) -> None:
    request = sales_order_request(("MUG-RED-350", 1, "12.90"))

    decision = await backend.erp.create_sales_order(request)

    assert decision.sales_order is not None
    customer_id = decision.sales_order.customer_id
    assert customer_id is not None
    customer = await backend.erp.get_customer(customer_id)
    assert customer is not None
    assert customer.name == "Ada Lovelace"


async def test_confirming_is_idempotent_and_seen_by_the_erp(backend: BackendUnderTest) -> None:
    decision = await backend.erp.create_sales_order(
        sales_order_request(("MUG-RED-350", 1, "12.90"))
    )
    assert decision.sales_order is not None
    number = decision.sales_order.sales_order_id

    first = await backend.erp.confirm_sales_order(number)
    second = await backend.erp.confirm_sales_order(number)

    assert first.state is second.state is SalesOrderState.CONFIRMED
    assert backend.probe.sales_orders(decision.sales_order.reference) == [(number, "confirmed")]


async def test_a_cancelled_order_cannot_be_confirmed(backend: BackendUnderTest) -> None:
    decision = await backend.erp.create_sales_order(
        sales_order_request(("MUG-RED-350", 1, "12.90"))
    )
    assert decision.sales_order is not None
    number = decision.sales_order.sales_order_id

    cancelled = await backend.erp.cancel_sales_order(number)
    with pytest.raises(InvalidDocumentState):
        await backend.erp.confirm_sales_order(number)

    assert cancelled.state is SalesOrderState.CANCELLED
    assert backend.probe.sales_orders(decision.sales_order.reference) == [(number, "cancelled")]


async def test_unknown_sales_orders_are_not_found(backend: BackendUnderTest) -> None:
    assert await backend.erp.get_sales_order("SO-DOES-NOT-EXIST") is None
    with pytest.raises(DocumentNotFound):
        await backend.erp.confirm_sales_order("SO-DOES-NOT-EXIST")


async def test_an_invoice_bills_shipped_quantities_once_per_reference(
    backend: BackendUnderTest,
) -> None:
    number = await confirmed_order(backend, ("MUG-RED-350", 3, "12.90"), ("TEE-ORG-M", 1, "24.00"))
    request = InvoiceRequest(
        sales_order_id=number,
        reference=f"shp_{uuid.uuid4().hex[:10]}",
        lines=[InvoiceLineRequest(line_id="1", quantity=2)],
    )

    invoice = await backend.erp.post_invoice(request)
    again = await backend.erp.post_invoice(request)

    assert invoice.total == eur("25.80")
    assert again.invoice_id == invoice.invoice_id
    assert backend.probe.invoice_total(invoice.invoice_id) == Decimal("25.80")
    assert await backend.erp.get_invoice(invoice.invoice_id) == invoice


async def test_no_line_is_invoiced_beyond_its_ordered_quantity(backend: BackendUnderTest) -> None:
    number = await confirmed_order(backend, ("MUG-RED-350", 2, "12.90"))
    first = InvoiceRequest(
        sales_order_id=number,
        reference=f"shp_{uuid.uuid4().hex[:10]}",
        lines=[InvoiceLineRequest(line_id="1", quantity=2)],
    )
    await backend.erp.post_invoice(first)

    with pytest.raises(QuantityExceeded):
        await backend.erp.post_invoice(
            InvoiceRequest(
                sales_order_id=number,
                reference=f"shp_{uuid.uuid4().hex[:10]}",
                lines=[InvoiceLineRequest(line_id="1", quantity=1)],
            )
        )


async def test_a_quotation_is_not_invoiced(backend: BackendUnderTest) -> None:
    decision = await backend.erp.create_sales_order(
        sales_order_request(("MUG-RED-350", 1, "12.90"))
    )
    assert decision.sales_order is not None

    with pytest.raises(InvalidDocumentState):
        await backend.erp.post_invoice(
            InvoiceRequest(
                sales_order_id=decision.sales_order.sales_order_id,
                reference=f"shp_{uuid.uuid4().hex[:10]}",
                lines=[InvoiceLineRequest(line_id="1", quantity=1)],
            )
        )


async def test_a_credit_note_credits_invoiced_lines_once_per_reference(
    backend: BackendUnderTest,
) -> None:
    number = await confirmed_order(backend, ("MUG-RED-350", 2, "12.90"))
    invoice = await backend.erp.post_invoice(
        InvoiceRequest(
            sales_order_id=number,
            reference=f"shp_{uuid.uuid4().hex[:10]}",
            lines=[InvoiceLineRequest(line_id="1", quantity=2)],
        )
    )
    request = CreditNoteRequest(
        invoice_id=invoice.invoice_id,
        reference=f"ret_{uuid.uuid4().hex[:10]}",
        lines=[CreditNoteLine(line_id="1", quantity=1, amount=eur("12.90"))],
        reason="returned, resellable",
    )

    credit = await backend.erp.post_credit_note(request)
    again = await backend.erp.post_credit_note(request)

    assert credit.total == eur("12.90")
    assert again.credit_note_id == credit.credit_note_id
    assert credit.credit_note_id is not None
    assert backend.probe.credit_note_total(credit.credit_note_id) == Decimal("12.90")


async def test_nothing_is_credited_beyond_what_was_invoiced(backend: BackendUnderTest) -> None:
    number = await confirmed_order(backend, ("MUG-RED-350", 1, "12.90"))
    invoice = await backend.erp.post_invoice(
        InvoiceRequest(
            sales_order_id=number,
            reference=f"shp_{uuid.uuid4().hex[:10]}",
            lines=[InvoiceLineRequest(line_id="1", quantity=1)],
        )
    )

    with pytest.raises(QuantityExceeded):
        await backend.erp.post_credit_note(
            CreditNoteRequest(
                invoice_id=invoice.invoice_id,
                reference=f"ret_{uuid.uuid4().hex[:10]}",
                lines=[CreditNoteLine(line_id="1", quantity=2, amount=eur("25.80"))],
                reason="too much",
            )
        )
