"""HTTP surface of fulfilment, invoicing and settlement for internal apps: thin handlers."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Request, Response, Security

from contracts import SettlementReport, Shipment
from contracts.common import ChannelCode, Identifier
from gateway_infra.auth.dependencies import authenticate
from gateway_infra.openapi import problem_responses
from gateway_infra.problems import NOT_FOUND, VALIDATION_ERROR, ProblemError
from process_api.fulfilment.models import (
    Invoicing,
    OrderShipments,
    Reconciliation,
    Release,
    ReleaseRequest,
)
from process_api.fulfilment.service import FulfilmentService, UnknownOrder


def get_fulfilment_service(request: Request) -> FulfilmentService:
    service: FulfilmentService = request.app.state.fulfilment
    return service


FulfilmentDep = Annotated[FulfilmentService, Depends(get_fulfilment_service)]
OrderId = Annotated[Identifier, Path(description="The gateway's order id.")]

ORDERS_READ = [Security(authenticate, scopes=["process:orders:read"])]
ORDERS_WRITE = [Security(authenticate, scopes=["process:orders:write"])]
SETTLEMENTS_READ = [Security(authenticate, scopes=["process:settlements:read"])]
SETTLEMENTS_WRITE = [Security(authenticate, scopes=["process:settlements:write"])]

router = APIRouter(prefix="/v1", responses=problem_responses(401, 403, 422))


def _not_found(order_id: str) -> ProblemError:
    return ProblemError(NOT_FOUND, f"no order {order_id!r}")


@router.post(
    "/orders/{order_id}/release",
    summary="Release an accepted order to the warehouse (idempotent)",
    tags=["fulfilment"],
    dependencies=ORDERS_WRITE,
    responses={
        200: {"description": "Released: the warehouse has the order (now or before)."},
        202: {
            "model": Release,
            "description": "Recorded; the ERP or WMS did not answer, a timer releases it later.",
        },
        **problem_responses(404, 409, 413, 415),
    },
)
async def release_order(
    service: FulfilmentDep,
    order_id: OrderId,
    response: Response,
    request: ReleaseRequest | None = None,
) -> Release:
    """Confirm the ERP's sales order and ask the WMS for a fulfilment: accepted -> released.

    Only accepted orders are released (409 `order-not-releasable`); a refusal by the ERP or the
    WMS answers 409 `release-refused` and opens an exception."""
    try:
        release = await service.release(
            order_id, actor="process_api", warehouse=request.warehouse if request else None
        )
    except UnknownOrder as exc:
        raise _not_found(order_id) from exc
    if release.fulfilment_id is None:
        response.status_code = 202
    return release


@router.post(
    "/orders/{order_id}/shipments",
    summary="Record a shipment of packages (idempotent per package)",
    tags=["fulfilment"],
    status_code=201,
    dependencies=ORDERS_WRITE,
    responses={
        200: {
            "model": OrderShipments,
            "description": "Every package was recorded before with the same contents: nothing "
            "changed.",
        },
        201: {"description": "New packages confirmed by the WMS and recorded."},
        202: {
            "model": OrderShipments,
            "description": "Recorded as pending; the WMS did not answer, a timer confirms them.",
        },
        **problem_responses(404, 409, 413, 415),
    },
)
async def record_shipment(
    service: FulfilmentDep, order_id: OrderId, shipment: Shipment, response: Response
) -> OrderShipments:
    """Packages the warehouse shipped for the order, each with its carrier, tracking number and
    units per order line.

    The same package reference again with the same contents changes nothing; with other
    contents it is refused (409 `package-conflict`): a shipped package is never rewritten here.
    Units beyond the ordered quantity of a line are refused (409 `over-shipment`). The WMS, the
    system of record for shipments, confirms every new package before it is recorded; its
    refusals are answered as its problems (e.g. 409 `quantity-exceeded`)."""
    if shipment.order_id != order_id:
        raise ProblemError(
            VALIDATION_ERROR,
            f"the shipment is for order {shipment.order_id!r}, the path names {order_id!r}",
            errors=[{"pointer": "#/order_id", "detail": "must equal the order id of the path"}],
        )
    try:
        recorded = await service.record_shipment(order_id, shipment, actor="process_api")
    except UnknownOrder as exc:
        raise _not_found(order_id) from exc
    if recorded.pending:
        response.status_code = 202
    elif not recorded.created:
        response.status_code = 200
    return recorded.shipments


@router.get(
    "/orders/{order_id}/shipments",
    summary="An order's shipments and packages",
    tags=["fulfilment"],
    dependencies=ORDERS_READ,
    responses=problem_responses(404),
)
async def order_shipments(service: FulfilmentDep, order_id: OrderId) -> OrderShipments:
    try:
        return await service.shipments(order_id)
    except UnknownOrder as exc:
        raise _not_found(order_id) from exc


@router.post(
    "/orders/{order_id}/invoice",
    summary="Invoice shipped units not invoiced yet (idempotent)",
    tags=["fulfilment"],
    dependencies=ORDERS_WRITE,
    responses={
        200: {"description": "Every shipped unit is invoiced (now or before)."},
        202: {
            "model": Invoicing,
            "description": "The ERP did not answer; a timer posts the invoice later.",
        },
        **problem_responses(404, 409),
    },
)
async def invoice_order(service: FulfilmentDep, order_id: OrderId, response: Response) -> Invoicing:
    """Post an ERP invoice for shipped units not invoiced yet (shipments are invoiced
    automatically as well); each invoice has a reference of its own, so a retry never invoices
    twice. A fully shipped and fully invoiced order becomes invoiced. Nothing shipped yet: 409
    `nothing-to-invoice`."""
    try:
        invoicing = await service.invoice(order_id)
    except UnknownOrder as exc:
        raise _not_found(order_id) from exc
    if invoicing.waiting_for_erp:
        response.status_code = 202
    return invoicing


@router.post(
    "/settlements",
    summary="Import a channel's payout report and reconcile it (idempotent)",
    tags=["settlements"],
    status_code=201,
    dependencies=SETTLEMENTS_WRITE,
    responses={
        200: {
            "model": Reconciliation,
            "description": "This report was imported before: its reconciliation, unchanged.",
        },
        201: {"description": "Imported and reconciled."},
        **problem_responses(409, 413, 415),
    },
)
async def import_settlement(
    service: FulfilmentDep, report: SettlementReport, request: Request, response: Response
) -> Reconciliation:
    """Each line is reconciled against the order's invoices (gross = total invoiced) and credit
    notes (refunds = total refunded). Matched invoiced orders become settled; any other line
    (amounts differ, unknown order, order not invoiced, another channel's order) opens an
    exception and leaves its order as it is. The same report again changes nothing; another
    report with the same payout id is refused (409 `settlement-conflict`)."""
    imported = await service.import_settlement(report, actor="process_api")
    # Payout ids are the channel's, in any script and with any character: percent-encoded, so
    # the header stays ASCII and the path one segment.
    response.headers["Location"] = str(
        request.url_for(
            "process_get_settlement",
            channel=report.channel,
            payout_id=quote(report.payout_id, safe=""),
        )
    )
    if not imported.created:
        response.status_code = 200
    return imported.reconciliation


@router.get(
    "/settlements/{channel}/{payout_id}",
    summary="A payout report and its reconciliation",
    name="process_get_settlement",
    tags=["settlements"],
    dependencies=SETTLEMENTS_READ,
    responses=problem_responses(404),
)
async def get_settlement(
    service: FulfilmentDep,
    channel: Annotated[ChannelCode, Path()],
    payout_id: Annotated[Identifier, Path()],
) -> Reconciliation:
    found = await service.reconciliation(channel, payout_id)
    if found is None:
        raise ProblemError(NOT_FOUND, f"no payout {payout_id!r} of channel {channel}")
    return found
