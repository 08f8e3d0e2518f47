"""HTTP surface of the ERP system API (/system/erp/v1): thin handlers over the ERP port."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Security

from contracts import CreditNote, Customer, Product
from contracts.common import Identifier, Sku
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceRequest,
    SalesOrder,
    SalesOrderDecision,
    SalesOrderRequest,
)
from gateway_infra.auth.dependencies import authenticate
from system_api.erp.port import ErpPort
from system_api.errors import DocumentNotFound
from system_api.schemas import ProductPage, problem_responses


def get_erp(request: Request) -> ErpPort:
    erp: ErpPort = request.app.state.erp
    return erp


ErpDep = Annotated[ErpPort, Depends(get_erp)]
READ = [Security(authenticate, scopes=["system:erp:read"])]
WRITE = [Security(authenticate, scopes=["system:erp:write"])]

router = APIRouter(prefix="/erp/v1", tags=["erp"], responses=problem_responses(401, 403, 422, 503))


@router.get("/products", summary="List item master records by SKU", dependencies=READ)
async def list_products(
    erp: ErpDep,
    after: Annotated[Sku | None, Query(description="Return SKUs after this one.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ProductPage:
    items = await erp.list_products(after=after, limit=limit)
    next_after = items[-1].sku if len(items) == limit else None
    return ProductPage(items=items, next_after=next_after)


@router.get(
    "/products/{sku}",
    summary="One item master record",
    responses=problem_responses(404),
    dependencies=READ,
)
async def get_product(erp: ErpDep, sku: Annotated[Sku, Path()]) -> Product:
    product = await erp.get_product(sku)
    if product is None:
        raise DocumentNotFound("product", sku)
    return product


@router.post(
    "/sales-orders",
    summary="Validate and record a sales order",
    dependencies=WRITE,
    description=(
        "Checks every line against the item master and price list. Accepted: the recorded sales "
        "order. Rejected: a reason per rejected line, and nothing recorded. Idempotent by "
        "`reference`: the same reference returns the sales order already recorded."
    ),
)
async def create_sales_order(erp: ErpDep, request: SalesOrderRequest) -> SalesOrderDecision:
    return await erp.create_sales_order(request)


@router.get(
    "/sales-orders/{sales_order_id}",
    summary="One sales order by the ERP's number",
    responses=problem_responses(404),
    dependencies=READ,
)
async def get_sales_order(erp: ErpDep, sales_order_id: Annotated[Identifier, Path()]) -> SalesOrder:
    sales_order = await erp.get_sales_order(sales_order_id)
    if sales_order is None:
        raise DocumentNotFound("sales order", sales_order_id)
    return sales_order


SalesOrderId = Annotated[Identifier, Path()]


@router.post(
    "/sales-orders/{sales_order_id}/confirm",
    summary="Confirm a sales order (idempotent)",
    responses=problem_responses(404, 409),
    dependencies=WRITE,
)
async def confirm_sales_order(erp: ErpDep, sales_order_id: SalesOrderId) -> SalesOrder:
    return await erp.confirm_sales_order(sales_order_id)


@router.post(
    "/sales-orders/{sales_order_id}/cancel",
    summary="Cancel a sales order (idempotent; not once invoiced)",
    responses=problem_responses(404, 409),
    dependencies=WRITE,
)
async def cancel_sales_order(erp: ErpDep, sales_order_id: SalesOrderId) -> SalesOrder:
    return await erp.cancel_sales_order(sales_order_id)


@router.get(
    "/customers/{customer_id}",
    summary="One customer (party)",
    responses=problem_responses(404),
    dependencies=READ,
)
async def get_customer(erp: ErpDep, customer_id: Annotated[Identifier, Path()]) -> Customer:
    customer = await erp.get_customer(customer_id)
    if customer is None:
        raise DocumentNotFound("customer", customer_id)
    return customer


@router.post(
    "/invoices",
    summary="Post an invoice for shipped quantities (once per reference)",
    status_code=201,
    responses=problem_responses(404, 409),
    dependencies=WRITE,
)
async def post_invoice(erp: ErpDep, request: InvoiceRequest) -> Invoice:
    return await erp.post_invoice(request)


@router.get(
    "/invoices/{invoice_id}",
    summary="One invoice by the ERP's number",
    responses=problem_responses(404),
    dependencies=READ,
)
async def get_invoice(erp: ErpDep, invoice_id: Annotated[Identifier, Path()]) -> Invoice:
    invoice = await erp.get_invoice(invoice_id)
    if invoice is None:
        raise DocumentNotFound("invoice", invoice_id)
    return invoice


@router.post(
    "/credit-notes",
    summary="Credit lines of a posted invoice (once per reference)",
    status_code=201,
    responses=problem_responses(404, 409),
    dependencies=WRITE,
)
async def post_credit_note(erp: ErpDep, request: CreditNoteRequest) -> CreditNote:
    return await erp.post_credit_note(request)
