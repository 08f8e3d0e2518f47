"""ErpPort over HTTP: the process layer talking to a system API that runs as its own service."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from contracts import CreditNote, Customer, Product
from contracts.erp import (
    CreditNoteRequest,
    Invoice,
    InvoiceRequest,
    SalesOrder,
    SalesOrderDecision,
    SalesOrderRequest,
)
from gateway_infra.auth.client_token import ClientCredentials
from gateway_infra.resilience import CircuitBreaker
from system_api.errors import problem_from_response
from system_api.http_transport import SystemApiTransport, unexpected
from system_api.schemas import ProductPage

_products = TypeAdapter(ProductPage)


class HttpErpClient:
    """ErpPort over /system/erp/v1. Every call is idempotent (sales orders, invoices and credit
    notes by their reference; confirm and cancel by state), so all of them may be retried."""

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
            base_url.rstrip("/") + "/erp/v1",
            timeout_seconds=timeout_seconds,
            attempts=attempts,
            credentials=credentials,
            client=client,
            breaker=breaker,
        )

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _request(self, method: str, url: str, json: Any = None) -> httpx.Response:
        # Every ERP call is idempotent: reads, and writes keyed by a reference or a state.
        response, _ = await self._transport.request(method, url, json=json, idempotent=True)
        return response

    async def get_product(self, sku: str) -> Product | None:
        response = await self._request("GET", f"/products/{sku}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise unexpected(response)
        return Product.model_validate_json(response.content)

    async def list_products(self, *, after: str | None = None, limit: int = 100) -> list[Product]:
        query = f"?limit={limit}" + (f"&after={after}" if after else "")
        response = await self._request("GET", f"/products{query}")
        if response.status_code != 200:
            raise unexpected(response)
        return _products.validate_json(response.content).items

    async def create_sales_order(self, request: SalesOrderRequest) -> SalesOrderDecision:
        response = await self._request(
            "POST", "/sales-orders", json=request.model_dump(mode="json")
        )
        if response.status_code != 200:
            raise unexpected(response)
        return SalesOrderDecision.model_validate_json(response.content)

    async def get_sales_order(self, sales_order_id: str) -> SalesOrder | None:
        response = await self._request("GET", f"/sales-orders/{quote(sales_order_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise unexpected(response)
        return SalesOrder.model_validate_json(response.content)

    async def confirm_sales_order(self, sales_order_id: str) -> SalesOrder:
        response = await self._request("POST", f"/sales-orders/{_segment(sales_order_id)}/confirm")
        return SalesOrder.model_validate_json(self._expect(response, 200).content)

    async def cancel_sales_order(self, sales_order_id: str) -> SalesOrder:
        response = await self._request("POST", f"/sales-orders/{_segment(sales_order_id)}/cancel")
        return SalesOrder.model_validate_json(self._expect(response, 200).content)

    async def get_customer(self, customer_id: str) -> Customer | None:
        response = await self._request("GET", f"/customers/{_segment(customer_id)}")
        if response.status_code == 404:
            return None
        return Customer.model_validate_json(self._expect(response, 200).content)

    async def post_invoice(self, request: InvoiceRequest) -> Invoice:
        response = await self._request("POST", "/invoices", json=request.model_dump(mode="json"))
        return Invoice.model_validate_json(self._expect(response, 201).content)

    async def get_invoice(self, invoice_id: str) -> Invoice | None:
        response = await self._request("GET", f"/invoices/{_segment(invoice_id)}")
        if response.status_code == 404:
            return None
        return Invoice.model_validate_json(self._expect(response, 200).content)

    async def post_credit_note(self, request: CreditNoteRequest) -> CreditNote:
        response = await self._request(
            "POST", "/credit-notes", json=request.model_dump(mode="json")
        )
        return CreditNote.model_validate_json(self._expect(response, 201).content)

    def _expect(self, response: httpx.Response, status: int) -> httpx.Response:
        """The response when it has the expected status; the system API's problem otherwise."""
        if response.status_code == status:
            return response
        raise problem_from_response("system API", response)


def _segment(value: str) -> str:
    return quote(value, safe="")
