"""HTTP to Amazon: only to allow-listed hosts, with Login with Amazon access tokens cached until
shortly before they expire, per-operation pacing from x-amzn-RateLimit-Limit, and 429/5xx retried
with exponential backoff and jitter. Waiting goes through the injected clock and sleep, so the
pacing is the same in production and in tests that move a manual clock."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from gateway_infra.clock import Clock
from gateway_infra.correlation import current_correlation_id
from process_api.marketplaces.amazon.profile import AmazonProfile, LwaCredentials, host_of

log = logging.getLogger("gateway.marketplaces.amazon")

Sleep = Callable[[float], Awaitable[None]]
TOKEN_EARLY_REFRESH = timedelta(seconds=60)
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024


class AmazonError(Exception):
    """A call to Amazon failed for good; detail says which operation and why."""

    def __init__(self, operation: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"{operation}: {detail}")
        self.operation = operation
        self.detail = detail
        self.status = status


class Throttled(AmazonError):
    """Amazon kept answering 429 through every attempt."""


class HostNotAllowed(AmazonError):
    """The adapter was about to call a host outside its allow-list (the call is never made)."""


class UnreadableDocument(AmazonError):
    """A document Amazon handed over could not be read (truncated or corrupt compression):
    asking again gives the same bytes, so whoever asked treats it as a verdict, not a failure
    to retry."""


UNREADABLE_COMPRESSION = (OSError, EOFError, zlib.error)
"""What gzip and zlib raise on data that is not gzip, cut short, or corrupt (download_document
turns these into UnreadableDocument)."""


@dataclass
class _Token:
    value: str
    expires_at: datetime


class SpApiClient:
    """The one door from the adapter to Amazon."""

    def __init__(
        self,
        profile: AmazonProfile,
        credentials: LwaCredentials,
        clock: Clock,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_document_bytes: int = MAX_DOCUMENT_BYTES,
    ) -> None:
        self.profile = profile
        self.max_document_bytes = max_document_bytes
        self.credentials = credentials
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.allowed = profile.allowed_hosts()
        self.http = httpx.AsyncClient(
            timeout=profile.timeout_seconds,
            follow_redirects=False,
            transport=transport,
            event_hooks={"request": [self._check_host]},
        )
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self.rates: dict[str, float] = {}
        self._last_call: dict[str, datetime] = {}
        self.token_requests = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _check_host(self, request: httpx.Request) -> None:
        if host_of(str(request.url)) not in self.allowed:
            raise HostNotAllowed(
                "outbound", f"{request.url.host} is not an allowed Amazon host; call refused"
            )

    def check_url(self, operation: str, url: str) -> None:
        """Refuse a URL Amazon handed us (a feed document) whose host is not allow-listed, or
        that is not https (plain http only when the endpoint itself is, as on a test bench)."""
        if host_of(url) not in self.allowed:
            raise HostNotAllowed(operation, f"document URL host {url!r} is not allow-listed")
        schemes = {"https", urlsplit(self.profile.endpoint).scheme}
        if urlsplit(url).scheme not in schemes:
            raise HostNotAllowed(operation, f"document URL {url[:200]!r} is not https")

    # ------------------------------------------------------------ Login with Amazon

    async def access_token(self) -> str:
        """A cached access token, exchanged for the refresh token when missing or expiring."""
        async with self._token_lock:
            now = self.clock.now()
            if self._token is not None and now < self._token.expires_at - TOKEN_EARLY_REFRESH:
                return self._token.value
            self.token_requests += 1
            response = await self._send_retrying(
                "lwa_token",
                lambda: self.http.post(
                    self.profile.token_url,
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": self.credentials.refresh_token.get_secret_value(),
                        "client_id": self.credentials.client_id,
                        "client_secret": self.credentials.client_secret.get_secret_value(),
                    },
                ),
            )
            if response.status_code != 200:
                raise AmazonError(
                    "lwa_token", f"token exchange refused ({response.status_code})", status=400
                )
            try:
                body = response.json()
                token = str(body["access_token"])
                lifetime = int(body.get("expires_in", 3600))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise AmazonError(
                    "lwa_token", f"token answer unreadable ({type(exc).__name__})", status=200
                ) from exc
            self._token = _Token(token, now + timedelta(seconds=lifetime))
            return token

    # ------------------------------------------------------------ SP-API calls

    async def call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: Any = None,
        expect: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        """One SP-API operation, paced and retried; AmazonError unless its status is expected."""
        url = self.profile.endpoint.rstrip("/") + path

        async def send() -> httpx.Response:
            token = await self.access_token()
            headers = {
                "x-amz-access-token": token,
                "user-agent": "retail-sync-gateway (Language=Python)",
                "accept": "application/json",
            }
            correlation = current_correlation_id()
            if correlation:
                headers["x-correlation-id"] = correlation
            return await self.http.request(
                method, url, params=dict(params or {}), json=json, headers=headers
            )

        response = await self._send_retrying(operation, send)
        if response.status_code == 403 and self._token is not None:
            # A token Amazon no longer accepts (revoked, rotated): exchange it once more.
            self._token = None
            response = await self._send_retrying(operation, send)
        if response.status_code not in expect:
            raise AmazonError(operation, _error_text(response), status=response.status_code)
        return response

    async def _send_retrying(
        self, operation: str, send: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        attempts = self.profile.max_attempts
        for attempt in range(1, attempts + 1):
            await self._pace(operation)
            try:
                response = await send()
            except httpx.TransportError as exc:
                if attempt == attempts:
                    raise AmazonError(operation, f"unreachable: {exc!r}") from exc
                await self.sleep(self._backoff(operation, attempt))
                continue
            self._learn_rate(operation, response)
            if response.status_code not in RETRIED_STATUSES:
                return response
            if attempt == attempts:
                if response.status_code == 429:
                    raise Throttled(
                        operation, f"still throttled (429) after {attempts} attempts", status=429
                    )
                return response
            await response.aclose()  # a streamed answer holds its connection until closed
            delay = self._backoff(operation, attempt)
            log.info(
                "amazon call retried",
                extra={"operation": operation, "status": response.status_code, "delay": delay},
            )
            await self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, operation: str, attempt: int) -> float:
        """Exponential backoff with full jitter, never faster than the operation's rate."""
        ceiling = min(
            self.profile.backoff_max_seconds,
            self.profile.backoff_base_seconds * 2 ** (attempt - 1),
        )
        delay = self.rng.uniform(ceiling / 2, ceiling)
        rate = self.rates.get(operation)
        return max(delay, 1 / rate) if rate else delay

    async def _pace(self, operation: str) -> None:
        """Space the operation's calls by its rate (1 / requests per second), once known."""
        rate = self.rates.get(operation)
        last = self._last_call.get(operation)
        if rate and last is not None:
            wait = (last + timedelta(seconds=1 / rate) - self.clock.now()).total_seconds()
            if wait > 0:
                await self.sleep(wait)
        self._last_call[operation] = self.clock.now()

    def _learn_rate(self, operation: str, response: httpx.Response) -> None:
        raw = response.headers.get("x-amzn-RateLimit-Limit")
        if raw is None:
            return
        try:
            rate = float(raw)
        except ValueError:
            return  # not a number: keep what we knew
        if math.isfinite(rate) and rate > 0:
            self.rates[operation] = rate

    # ------------------------------------------------------------ feed documents

    async def upload_document(self, url: str, content: bytes, content_type: str) -> None:
        self.check_url("upload_document", url)
        response = await self._send_retrying(
            "upload_document",
            lambda: self.http.put(url, content=content, headers={"content-type": content_type}),
        )
        if response.status_code not in (200, 201, 204):
            raise AmazonError("upload_document", _error_text(response), status=response.status_code)

    async def download_document(self, url: str, compression: str | None) -> bytes:
        """The document, streamed and decompressed up to max_document_bytes: never more is
        read or inflated (UnreadableDocument beyond that, or when it is cut short or corrupt)."""
        self.check_url("download_document", url)
        response = await self._send_retrying(
            "download_document",
            lambda: self.http.send(self.http.build_request("GET", url), stream=True),
        )
        try:
            content = bytearray()
            async for chunk in response.aiter_bytes():
                content += chunk
                if response.status_code != 200 and len(content) > 300:
                    break  # enough to say why
                if len(content) > self.max_document_bytes:
                    raise self._too_large()
            if response.status_code != 200:
                text = content[:300].decode("utf-8", "replace")
                raise AmazonError(
                    "download_document",
                    f"HTTP {response.status_code}" + (f" ({text})" if text else ""),
                    status=response.status_code,
                )
        finally:
            await response.aclose()
        if compression != "GZIP":
            return bytes(content)
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
        try:
            inflated = inflater.decompress(content, self.max_document_bytes + 1)
        except zlib.error as exc:
            raise UnreadableDocument(
                "download_document", f"GZIP document unreadable: {exc!r}"[:300]
            ) from exc
        if len(inflated) > self.max_document_bytes:
            raise self._too_large()
        if not inflater.eof:
            raise UnreadableDocument("download_document", "GZIP document cut short")
        return inflated

    def _too_large(self) -> UnreadableDocument:
        return UnreadableDocument(
            "download_document", f"document larger than {self.max_document_bytes} bytes"
        )


def json_of(operation: str, response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an answer; AmazonError when it is not one."""
    try:
        body = response.json()
    except ValueError as exc:
        raise AmazonError(operation, "answer is not JSON", status=response.status_code) from exc
    if not isinstance(body, dict):
        raise AmazonError(operation, "answer is not a JSON object", status=response.status_code)
    return body


def _error_text(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        text = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors)
    except (ValueError, AttributeError):
        text = response.text[:300]
    return f"HTTP {response.status_code}" + (f" ({text})" if text else "")
