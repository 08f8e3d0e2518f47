"""ErpPort over HTTP: the process layer talking to a system API that runs as its own service."""

from __future__ import annotations

import asyncio
import random
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
from gateway_infra.auth.client_token import ClientCredentials, ClientCredentialsToken
from gateway_infra.correlation import CORRELATION_HEADER, current_correlation_id
from system_api.errors import BackendUnavailable, problem_from_response
from system_api.schemas import ProductPage

_RETRYABLE_STATUS = frozenset({502, 503, 504})
_products = TypeAdapter(ProductPage)


class HttpErpClient:
    """Calls /system/erp/v1 with timeouts; every call here is idempotent, so transport errors retry.

    create_sales_order is idempotent by its reference, which is why it may be retried too.
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
    ) -> None:
        self._client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/erp/v1", timeout=httpx.Timeout(timeout_seconds)
        )
        self._token = (
            ClientCredentialsToken(self._client, credentials) if credentials is not None else None
        )
        self._attempts = attempts
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _headers(self) -> dict[str, str]:
        headers = {}
        correlation_id = current_correlation_id()
        if correlation_id:
            headers[CORRELATION_HEADER] = correlation_id
        if self._token is not None:
            headers["Authorization"] = f"Bearer {await self._token.bearer()}"
        return headers

    async def _request(self, method: str, url: str, json: Any = None) -> httpx.Response:
        last_error = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            try:
                response = await self._client.request(
                    method, url, json=json, headers=await self._headers()
                )
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 401 and self._token is not None:
                    self._token.forget()  # keys rotated or token expired early: fetch a new one
                    last_error = "HTTP 401 from system API"
                elif response.status_code not in _RETRYABLE_STATUS:
                    return response
                else:
                    last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt < self._attempts:
                await asyncio.sleep(self._rng.uniform(0, 0.05 * 2**attempt))
        raise BackendUnavailable("system API", last_error)

    @staticmethod
    def _unexpected(response: httpx.Response) -> BackendUnavailable:
        return BackendUnavailable(
            "system API", f"unexpected HTTP {response.status_code}: {response.text[:200]}"
        )

    async def get_product(self, sku: str) -> Product | None:
        response = await self._request("GET", f"/products/{sku}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response)
        return Product.model_validate_json(response.content)

    async def list_products(self, *, after: str | None = None, limit: int = 100) -> list[Product]:
        query = f"?limit={limit}" + (f"&after={after}" if after else "")
        response = await self._request("GET", f"/products{query}")
        if response.status_code != 200:
            raise self._unexpected(response)
        return _products.validate_json(response.content).items

    async def create_sales_order(self, request: SalesOrderRequest) -> SalesOrderDecision:
        response = await self._request(
            "POST", "/sales-orders", json=request.model_dump(mode="json")
        )
        if response.status_code != 200:
            raise self._unexpected(response)
        return SalesOrderDecision.model_validate_json(response.content)

    async def get_sales_order(self, sales_order_id: str) -> SalesOrder | None:
        response = await self._request("GET", f"/sales-orders/{quote(sales_order_id, safe='')}")
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._unexpected(response)
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
