"""HTTP surface of the WMS system API (/system/wms/v1): thin handlers over the WMS port."""

from __future__ import annotations

from typing import Annotated, Protocol, runtime_checkable

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security, status

from contracts.common import Sku
from contracts.wms import (
    Fulfilment,
    FulfilmentRequest,
    InspectionRecord,
    InspectionRequest,
    ReturnReceipt,
    ReturnReceiptRequest,
    ShipmentConfirmation,
    StockAdjustment,
    StockAdjustmentRequest,
    StockLevel,
    Warehouse,
)
from gateway_infra.auth.dependencies import authenticate
from system_api.errors import DocumentNotFound
from system_api.schemas import problem_responses
from system_api.wms.port import WmsPort


@runtime_checkable
class ReportsCreation(Protocol):
    """A WMS that tells whether a document was created by the call or was already there.

    EmbeddedWms and HttpWmsClient do; with any other port every creation is answered 201.
    """

    async def adjust_stock_outcome(
        self, request: StockAdjustmentRequest
    ) -> tuple[StockAdjustment, bool]: ...

    async def request_fulfilment_outcome(
        self, request: FulfilmentRequest
    ) -> tuple[Fulfilment, bool]: ...

    async def receive_return_outcome(
        self, request: ReturnReceiptRequest
    ) -> tuple[ReturnReceipt, bool]: ...

    async def record_inspection_outcome(
        self, rma_reference: str, request: InspectionRequest
    ) -> tuple[InspectionRecord, bool]: ...


def get_wms(request: Request) -> WmsPort:
    wms: WmsPort = request.app.state.wms
    return wms


WmsDep = Annotated[WmsPort, Depends(get_wms)]
READ = [Security(authenticate, scopes=["system:wms:read"])]
WRITE = [Security(authenticate, scopes=["system:wms:write"])]
WarehouseCode = Annotated[str, Query(min_length=1, max_length=64)]
FulfilmentId = Annotated[str, Path(min_length=1, max_length=128)]
RmaReference = Annotated[str, Path(min_length=1, max_length=128)]

router = APIRouter(prefix="/wms/v1", tags=["wms"], responses=problem_responses(401, 403, 422, 503))


def _created(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


@router.get(
    "/warehouses", summary="Every warehouse stock is held and shipped from", dependencies=READ
)
async def list_warehouses(wms: WmsDep) -> list[Warehouse]:
    return await wms.list_warehouses()


@router.get(
    "/stock",
    summary="Sellable on-hand per SKU and warehouse",
    dependencies=READ,
    description=(
        "Units on hand and sellable, ordered by SKU then warehouse; quarantined and scrapped "
        "units are not counted. A SKU never stocked in a warehouse has no entry."
    ),
)
async def stock_levels(
    wms: WmsDep,
    sku: Annotated[Sku | None, Query(description="Only this SKU.")] = None,
    warehouse: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> list[StockLevel]:
    return await wms.stock_levels(sku=sku, warehouse=warehouse)


@router.post(
    "/stock/adjustments",
    summary="Apply a receipt, damage or cycle count",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {
            "model": StockAdjustment,
            "description": "The reference was applied before: the adjustment it made.",
        },
        **problem_responses(404, 409, 413, 415),
    },
    dependencies=WRITE,
    description=(
        "Receipts add units, damage removes them (refused with 409 below zero), a cycle count "
        "sets the counted quantity. Idempotent by (`sku`, `warehouse`, `reason`, `reference`): "
        "the same request again answers 200 with the adjustment applied the first time; the "
        "same reference with a different change is refused with 409. 404: unknown warehouse."
    ),
)
async def adjust_stock(
    wms: WmsDep, request: StockAdjustmentRequest, response: Response
) -> StockAdjustment:
    if isinstance(wms, ReportsCreation):
        adjustment, created = await wms.adjust_stock_outcome(request)
        _created(response, created)
        return adjustment
    return await wms.adjust_stock(request)


@router.post(
    "/fulfilments",
    summary="Release an order's lines to a warehouse",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": Fulfilment, "description": "The order was released before: as it is."},
        **problem_responses(404, 413, 415),
    },
    dependencies=WRITE,
    description=(
        "Idempotent by `order_reference`: the same order again answers 200 with the fulfilment "
        "released the first time. 404: unknown warehouse."
    ),
)
async def request_fulfilment(
    wms: WmsDep, request: FulfilmentRequest, http_request: Request, response: Response
) -> Fulfilment:
    if isinstance(wms, ReportsCreation):
        fulfilment, created = await wms.request_fulfilment_outcome(request)
        _created(response, created)
    else:
        fulfilment = await wms.request_fulfilment(request)
    location = http_request.url_for("wms_get_fulfilment", fulfilment_id=fulfilment.fulfilment_id)
    response.headers["Location"] = str(location)
    return fulfilment


@router.get(
    "/fulfilments/{fulfilment_id}",
    name="wms_get_fulfilment",
    summary="One fulfilment with its packages",
    responses=problem_responses(404),
    dependencies=READ,
)
async def get_fulfilment(wms: WmsDep, fulfilment_id: FulfilmentId) -> Fulfilment:
    fulfilment = await wms.get_fulfilment(fulfilment_id)
    if fulfilment is None:
        raise DocumentNotFound("fulfilment", fulfilment_id)
    return fulfilment


@router.post(
    "/fulfilments/{fulfilment_id}/shipments",
    summary="Confirm shipped packages of a fulfilment",
    responses=problem_responses(404, 409, 413, 415),
    dependencies=WRITE,
    description=(
        "Records the packages and consumes their units from on-hand, all or nothing. A package "
        "reference confirmed before replaces that package while the fulfilment is open (a "
        "correction; the same package again changes nothing). Once the fulfilment is shipped "
        "(every unit, or `complete`) its packages are final: 409 package-after-completion. "
        "409 also for more units than ordered (quantity-exceeded), or a line or SKU the "
        "fulfilment does not have or too little on hand (invalid-document-state)."
    ),
)
async def confirm_shipment(
    wms: WmsDep, fulfilment_id: FulfilmentId, confirmation: ShipmentConfirmation
) -> Fulfilment:
    return await wms.confirm_shipment(fulfilment_id, confirmation)


@router.post(
    "/returns/receipts",
    summary="Record returned goods as received",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": ReturnReceipt, "description": "The RMA was received before: its receipt."},
        **problem_responses(404, 413, 415),
    },
    dependencies=WRITE,
    description=(
        "Received goods are not sellable until inspected. Idempotent by `rma_reference`: the "
        "same RMA again answers 200 with the receipt recorded the first time. 404: unknown "
        "warehouse."
    ),
)
async def receive_return(
    wms: WmsDep, request: ReturnReceiptRequest, response: Response
) -> ReturnReceipt:
    if isinstance(wms, ReportsCreation):
        receipt, created = await wms.receive_return_outcome(request)
        _created(response, created)
        return receipt
    return await wms.receive_return(request)


@router.post(
    "/returns/{rma_reference:path}/inspection",
    summary="Record the inspection of received return goods",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": InspectionRecord, "description": "The same inspection was recorded before."},
        **problem_responses(404, 409, 413, 415),
    },
    dependencies=WRITE,
    description=(
        "Restocked units become sellable; quarantined and scrapped units never are. Once per "
        "RMA: the same inspection again answers 200, a different one 409. 404: no receipt for "
        "the RMA; 409 quantity-exceeded: more units than received."
    ),
)
async def record_inspection(
    wms: WmsDep, rma_reference: RmaReference, request: InspectionRequest, response: Response
) -> InspectionRecord:
    if isinstance(wms, ReportsCreation):
        record, created = await wms.record_inspection_outcome(rma_reference, request)
        _created(response, created)
        return record
    return await wms.record_inspection(rma_reference, request)
