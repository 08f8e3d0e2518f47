"""HTTP calls to a system API running as its own service: bearer token, correlation id,
timeouts, and retries with jittered backoff for what may safely run twice."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx

from gateway_infra.auth.client_token import ClientCredentials, ClientCredentialsToken
from gateway_infra.correlation import outbound_headers
from gateway_infra.metrics import observe_backend_call
from gateway_infra.resilience import CircuitBreaker, CircuitOpen
from gateway_infra.tracing import span
from system_api.errors import BackendUnavailable

BACKEND = "system API"
_RETRYABLE_STATUS = frozenset({502, 503, 504})
# Failures before the request left: retrying them cannot run anything twice.
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


class SystemApiTransport:
    """One system API (e.g. `<base>/erp/v1`) as seen by a client of it."""

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
        self._breaker = breaker
        self._client = client or httpx.AsyncClient(
            base_url=base_url, timeout=httpx.Timeout(timeout_seconds)
        )
        self._token = (
            ClientCredentialsToken(self._client, credentials) if credentials is not None else None
        )
        self._attempts = attempts
        self._rng = random.Random()  # noqa: S311 - jitter, not security

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _headers(self) -> dict[str, str]:
        headers = outbound_headers()
        if self._token is not None:
            headers["Authorization"] = f"Bearer {await self._token.bearer()}"
        return headers

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool = False,
    ) -> tuple[httpx.Response, int]:
        """The response and the attempts it took. GETs and requests the caller declares
        idempotent are retried on transport errors and 502/503/504; others only when the
        connection was never made. BackendUnavailable when no attempt got an answer, and at
        once while the circuit breaker is open (the service failed repeatedly just now)."""
        retry = method == "GET" or idempotent
        last_error = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            if self._breaker is not None:
                try:
                    self._breaker.before_call()
                except CircuitOpen as exc:
                    raise BackendUnavailable(BACKEND, str(exc)) from exc
            started = time.perf_counter()
            try:
                with span(f"system API {method}", kind="client", attributes={"url.path": url}):
                    response = await self._client.request(
                        method, url, json=json, params=params, headers=await self._headers()
                    )
            except httpx.HTTPError as exc:
                self._observe(started, attempt, ok=False)
                last_error = f"{type(exc).__name__}: {exc}"
                self._failed()
                if not retry and not isinstance(exc, _NEVER_SENT):
                    break
            else:
                self._observe(started, attempt, ok=response.status_code not in _RETRYABLE_STATUS)
                if response.status_code == 401 and self._token is not None:
                    self._token.forget()  # keys rotated or token expired early: fetch a new one
                    last_error = "HTTP 401 from system API"
                    self._answered()
                elif response.status_code not in _RETRYABLE_STATUS:
                    self._answered()
                    return response, attempt
                elif not retry:
                    self._failed()
                    return response, attempt
                else:
                    self._failed()
                    last_error = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt < self._attempts:
                await asyncio.sleep(self._rng.uniform(0, 0.05 * 2**attempt))
        raise BackendUnavailable(BACKEND, last_error)

    def _observe(self, started: float, attempt: int, *, ok: bool) -> None:
        backend = self._breaker.name if self._breaker is not None else "system_api"
        observe_backend_call(backend, ok=ok, seconds=time.perf_counter() - started, attempt=attempt)

    def _answered(self) -> None:
        if self._breaker is not None:
            self._breaker.record_success()

    def _failed(self) -> None:
        if self._breaker is not None:
            self._breaker.record_failure()


def unexpected(response: httpx.Response) -> BackendUnavailable:
    return BackendUnavailable(
        BACKEND, f"unexpected HTTP {response.status_code}: {response.text[:200]}"
    )
