"""WmsPort over HTTP: the process layer talking to a system API that runs as its own service."""

from __future__ import annotations

from typing import NoReturn, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from contracts.shipment import Package
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
from gateway_infra.auth.client_token import ClientCredentials
from gateway_infra.problems import NOT_FOUND, ProblemError
from gateway_infra.resilience import CircuitBreaker
from system_api.errors import (
    BackendRejected,
    DocumentNotFound,
    InvalidDocumentState,
    PackageAfterCompletion,
    QuantityExceeded,
)
from system_api.http_transport import BACKEND, SystemApiTransport, unexpected

_warehouses = TypeAdapter(list[Warehouse])
_stock_levels = TypeAdapter(list[StockLevel])
M = TypeVar("M", bound=BaseModel)


class RemoteDocumentNotFound(DocumentNotFound):
    """DocumentNotFound as the system API reported it, with its detail kept word for word."""

    def __init__(self, detail: str) -> None:
        ProblemError.__init__(self, NOT_FOUND, detail)


class HttpWmsClient:
    """Calls /system/wms/v1 with timeouts and a bearer token.

    Transport errors and 502/503/504 are retried for reads and for requests that are idempotent
    by a reference, which every write here is: stock adjustments by (sku, warehouse, reason,
    reference), fulfilments by order_reference, shipments by package_reference (the same package
    again changes nothing), return receipts by rma_reference and inspections once per RMA. A
    write that is not would only be retried when the connection was never made.

    One case needs care: a confirmation that completed its fulfilment, committed, and lost its
    answer is refused (PackageAfterCompletion) when retried; the client then reads the fulfilment
    and returns it if it holds exactly the confirmed packages.

    Problem answers become the errors of system_api.errors, keeping the server's detail:
    404 -> DocumentNotFound, 409 -> InvalidDocumentState / QuantityExceeded /
    PackageAfterCompletion, 422 -> BackendRejected; anything else -> BackendUnavailable.
    """

    name = "system_api_http"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 5.0,
        attempts: int = 3,
        credentials: ClientCredentials | None = None,
        client: httpx.AsyncClient | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._transport = SystemApiTransport(
            base_url.rstrip("/") + "/wms/v1",
            timeout_seconds=timeout_seconds,
            attempts=attempts,
            credentials=credentials,
            client=client,
            breaker=breaker,
        )
        self._request = self._transport.request

    async def aclose(self) -> None:
        await self._transport.aclose()

    def _raise_problem(self, response: httpx.Response) -> NoReturn:
        """Raise the error a problem answer stands for (BackendUnavailable if it is none)."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise unexpected(response)
        code, detail = body.get("code"), str(body.get("detail") or body.get("title") or "")
        status = response.status_code
        if status == 404 and code == "not-found":
            raise RemoteDocumentNotFound(detail)
        if status == 409 and code == "invalid-document-state":
            raise InvalidDocumentState(detail)
        if status == 409 and code == "quantity-exceeded":
            raise QuantityExceeded(detail)
        if status == 409 and code == "package-after-completion":
            raise PackageAfterCompletion(
                str(body.get("fulfilment_id", "")), str(body.get("package_reference", ""))
            )
        if status == 422 and code == "backend-rejected":
            raise BackendRejected(
                str(body.get("backend") or BACKEND), str(body.get("backend_message") or detail)
            )
        if status == 422:
            errors = body.get("errors")
            raise BackendRejected(BACKEND, f"{detail}: {errors}" if errors else detail)
        raise unexpected(response)

    def _document(
        self, response: httpx.Response, model: type[M], *, ok: frozenset[int]
    ) -> tuple[M, bool]:
        """The document of a successful answer, and whether it was created (201)."""
        if response.status_code not in ok:
            self._raise_problem(response)
        return model.model_validate_json(response.content), response.status_code == 201

    # ------------------------------------------------------------ warehouses and stock

    async def list_warehouses(self) -> list[Warehouse]:
        response, _ = await self._request("GET", "/warehouses")
        if response.status_code != 200:
            self._raise_problem(response)
        return _warehouses.validate_json(response.content)

    async def stock_levels(
        self, *, sku: str | None = None, warehouse: str | None = None
    ) -> list[StockLevel]:
        params = {name: value for name, value in (("sku", sku), ("warehouse", warehouse)) if value}
        response, _ = await self._request("GET", "/stock", params=params)
        if response.status_code != 200:
            self._raise_problem(response)
        return _stock_levels.validate_json(response.content)

    async def adjust_stock(self, request: StockAdjustmentRequest) -> StockAdjustment:
        adjustment, _ = await self.adjust_stock_outcome(request)
        return adjustment

    async def adjust_stock_outcome(
        self, request: StockAdjustmentRequest
    ) -> tuple[StockAdjustment, bool]:
        response, _ = await self._request(
            "POST", "/stock/adjustments", json=request.model_dump(mode="json"), idempotent=True
        )
        return self._document(response, StockAdjustment, ok=frozenset({200, 201}))

    # ------------------------------------------------------------ fulfilment

    async def request_fulfilment(self, request: FulfilmentRequest) -> Fulfilment:
        fulfilment, _ = await self.request_fulfilment_outcome(request)
        return fulfilment

    async def request_fulfilment_outcome(
        self, request: FulfilmentRequest
    ) -> tuple[Fulfilment, bool]:
        response, _ = await self._request(
            "POST", "/fulfilments", json=request.model_dump(mode="json"), idempotent=True
        )
        return self._document(response, Fulfilment, ok=frozenset({200, 201}))

    async def get_fulfilment(self, fulfilment_id: str) -> Fulfilment | None:
        response, _ = await self._request("GET", f"/fulfilments/{quote(fulfilment_id, safe='')}")
        if response.status_code == 404:
            return None
        fulfilment, _ = self._document(response, Fulfilment, ok=frozenset({200}))
        return fulfilment

    async def confirm_shipment(
        self, fulfilment_id: str, confirmation: ShipmentConfirmation
    ) -> Fulfilment:
        response, attempts = await self._request(
            "POST",
            f"/fulfilments/{quote(fulfilment_id, safe='')}/shipments",
            json=confirmation.model_dump(mode="json"),
            idempotent=True,
        )
        try:
            fulfilment, _ = self._document(response, Fulfilment, ok=frozenset({200}))
        except PackageAfterCompletion:
            if attempts == 1:
                raise
            # An earlier attempt may have been the one that completed the fulfilment.
            current = await self.get_fulfilment(fulfilment_id)
            if current is None or not _holds_exactly(current, confirmation.packages):
                raise
            return current
        return fulfilment

    # ------------------------------------------------------------ returns

    async def receive_return(self, request: ReturnReceiptRequest) -> ReturnReceipt:
        receipt, _ = await self.receive_return_outcome(request)
        return receipt

    async def receive_return_outcome(
        self, request: ReturnReceiptRequest
    ) -> tuple[ReturnReceipt, bool]:
        response, _ = await self._request(
            "POST", "/returns/receipts", json=request.model_dump(mode="json"), idempotent=True
        )
        return self._document(response, ReturnReceipt, ok=frozenset({200, 201}))

    async def record_inspection(
        self, rma_reference: str, request: InspectionRequest
    ) -> InspectionRecord:
        record, _ = await self.record_inspection_outcome(rma_reference, request)
        return record

    async def record_inspection_outcome(
        self, rma_reference: str, request: InspectionRequest
    ) -> tuple[InspectionRecord, bool]:
        response, _ = await self._request(
            "POST",
            f"/returns/{quote(rma_reference, safe='')}/inspection",
            json=request.model_dump(mode="json"),
            idempotent=True,
        )
        return self._document(response, InspectionRecord, ok=frozenset({200, 201}))


def _package_key(package: Package) -> tuple[str, str, str, tuple[tuple[str, str, int], ...]]:
    lines = sorted((line.line_id, line.sku, line.quantity) for line in package.lines)
    return package.package_reference, package.carrier, package.tracking_number, tuple(lines)


def _holds_exactly(fulfilment: Fulfilment, packages: list[Package]) -> bool:
    """True when the fulfilment is complete and has each of these packages as confirmed."""
    if fulfilment.completed_at is None:
        return False
    stored = {p.package_reference: _package_key(p) for p in fulfilment.packages}
    return all(stored.get(p.package_reference) == _package_key(p) for p in packages)
