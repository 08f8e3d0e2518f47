"""An async JSON-RPC client for Tryton 8.x, every call guarded (timeout, retries for idempotent
calls, circuit breaker, concurrency and rate caps).

- One ``httpx.AsyncClient`` kept open; one session (``common.db.login``) shared by all calls,
  made lazily and made again once when Tryton answers 401 (sessions expire; some methods such
  as ``account.invoice.post`` demand a fresh one).
- The user context (company, language...) is sent as the last parameter of every model call.
- UserWarnings (e.g. "the shipment has no carrier") are accepted through ``res.user.warning``
  and the call is made again, when the caller asks for it.
- Errors: CircuitOpen and RemoteUnavailable become :class:`BackendUnavailable` (503 with
  Retry-After); what Tryton answers stays a :class:`TrytonError` for the adapters to map.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from weakref import WeakValueDictionary

import httpx

from gateway_infra.correlation import outbound_headers
from gateway_infra.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpen,
    GuardPolicy,
    RemoteCallGuard,
    RemoteUnavailable,
)
from gateway_infra.tracing import span
from system_api.backends.tryton.codec import decode, encode
from system_api.errors import BackendUnavailable

__all__ = ["TrytonClient", "TrytonConnection", "TrytonError", "TrytonUnavailable"]

BACKEND = "tryton"
T = TypeVar("T")
log = logging.getLogger("gateway.tryton")

# Methods that only read: safe to retry after a timeout or a dropped connection.
READ_METHODS = frozenset(
    {"search", "read", "search_read", "search_count", "fields_get", "get_preferences"}
)
# How many different UserWarnings one button may raise before we give up.
MAX_WARNINGS = 5


class TrytonError(Exception):
    """An answer of Tryton that is not a result.

    ``kind`` is "UserError", "UserWarning", "ConcurrencyException", the text of an unexpected
    exception, or "HTTP <status>" for answers outside JSON-RPC (403, 404...).
    """

    def __init__(self, kind: str, detail: Any, status_code: int = 200) -> None:
        super().__init__(f"{kind}: {_short(detail)}")
        self.kind = kind
        self.detail = detail
        self.status_code = status_code

    @property
    def message(self) -> str:
        """The human message, without the (huge) domain description of a UserError."""
        if isinstance(self.detail, list) and self.detail:
            index = 1 if self.kind == "UserWarning" and len(self.detail) > 1 else 0
            return str(self.detail[index])
        if self.kind not in ("UserError", "UserWarning") and not self.detail:
            return self.kind
        return str(self.detail)

    @property
    def warning_name(self) -> str | None:
        if self.kind == "UserWarning" and isinstance(self.detail, list) and self.detail:
            return str(self.detail[0])
        return None

    @property
    def is_user_error(self) -> bool:
        return self.kind == "UserError"


class TrytonUnavailable(Exception):
    """Tryton could not serve the call: no connection, a 5xx answer, or no valid session."""


def _short(detail: Any) -> str:
    if isinstance(detail, list) and detail:
        return str(detail[0])[:500]
    return str(detail)[:500]


def is_unavailable(exc: BaseException) -> bool:
    """What the guard counts as the backend being down (everything else is an answer)."""
    return isinstance(exc, TrytonUnavailable | httpx.TransportError)


@dataclass(frozen=True)
class TrytonConnection:
    """Where and as whom the adapter talks to Tryton."""

    url: str
    database: str
    username: str
    password: str

    @property
    def database_url(self) -> str:
        return f"{self.url.rstrip('/')}/{self.database}/rpc/"


class TrytonClient:
    """Guarded JSON-RPC calls on one Tryton database, shared by the ERP and WMS adapters."""

    def __init__(
        self,
        connection: TrytonConnection,
        guard: RemoteCallGuard,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.connection = connection
        self.guard = guard
        timeout = httpx.Timeout(guard.policy.timeout_seconds + 1.0)
        self._http = http or httpx.AsyncClient(timeout=timeout)
        self._owns_http = http is None
        self._authorization: str | None = None
        self._session_generation = 0
        self._login_lock = asyncio.Lock()
        self.uid: int | None = None
        self.context: dict[str, Any] = {}
        self._next_id = 0
        self._locks: WeakValueDictionary[str, asyncio.Lock] = WeakValueDictionary()
        self._cache: dict[str, Any] = {}

    @classmethod
    def connect(
        cls,
        connection: TrytonConnection,
        breaker: CircuitBreaker,
        policy: GuardPolicy | None = None,
        *,
        http: httpx.AsyncClient | None = None,
    ) -> TrytonClient:
        guard = RemoteCallGuard(breaker, policy or GuardPolicy(), is_unavailable=is_unavailable)
        return cls(connection, guard, http=http)

    @property
    def breaker(self) -> CircuitBreaker:
        return self.guard.breaker

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ public calls

    async def call(
        self,
        model: str,
        method: str,
        *args: Any,
        context: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        accept_warnings: bool = False,
    ) -> Any:
        """``model.<model>.<method>(*args, context)`` under the guard.

        Reads are retried; anything else is tried once unless ``idempotent`` says otherwise.
        With ``accept_warnings`` a UserWarning is accepted and the call made again.
        """
        retry = method in READ_METHODS if idempotent is None else idempotent
        for _ in range(MAX_WARNINGS + 1):
            try:
                return await self.guarded(
                    lambda: self._model_call(model, method, args, context), idempotent=retry
                )
            except TrytonError as exc:
                if not (accept_warnings and exc.kind == "UserWarning" and exc.warning_name):
                    raise
                log.info(
                    "accepting Tryton warning",
                    extra={"model": model, "method": method, "warning": exc.message},
                )
                await self.call(
                    "res.user.warning",
                    "create",
                    [{"user": self.uid, "name": exc.warning_name, "always": False}],
                )
        raise TrytonError("UserWarning", f"{model}.{method} kept raising warnings")

    async def search_read(
        self,
        model: str,
        domain: list[Any],
        fields: list[str],
        *,
        order: list[Any] | None = None,
        limit: int | None = None,
        offset: int = 0,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = await self.call(
            model, "search_read", domain, offset, limit, order, fields, context=context
        )
        return records

    async def read(
        self,
        model: str,
        ids: list[int],
        fields: list[str],
        *,
        context: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        if not ids:
            return []
        records: list[dict[str, Any]] = await self.call(model, "read", ids, fields, context=context)
        by_id = {record["id"]: record for record in records}
        return [by_id[i] for i in ids if i in by_id]

    async def search(
        self,
        model: str,
        domain: list[Any],
        *,
        order: list[Any] | None = None,
        limit: int | None = None,
    ) -> list[int]:
        ids: list[int] = await self.call(model, "search", domain, 0, limit, order)
        return ids

    async def create(self, model: str, values: list[dict[str, Any]]) -> list[int]:
        ids: list[int] = await self.call(model, "create", values)
        return ids

    async def write(self, model: str, ids: list[int], values: dict[str, Any]) -> None:
        if ids:
            await self.call(model, "write", ids, values, idempotent=True)

    async def button(self, model: str, method: str, ids: list[int]) -> Any:
        """A workflow button (quote, confirm, pick, do...), accepting UserWarnings."""
        return await self.call(model, method, ids, accept_warnings=True)

    async def run_wizard(
        self,
        name: str,
        model: str,
        ids: list[int],
        steps: Callable[[str, dict[str, Any]], list[tuple[str, dict[str, Any]]]],
    ) -> Any:
        """``wizard.<name>``: create, execute its start state, then the steps ``steps`` derives
        from (start state name, first answer); always deleted at the end."""

        async def request(method: str, params: list[Any]) -> Any:
            return await self.guarded(
                lambda: self._request(f"wizard.{name}.{method}", params), idempotent=False
            )

        session, start, _end = await request("create", [{}])
        context = {**self.context, "active_model": model, "active_id": ids[0], "active_ids": ids}
        try:
            first = await request("execute", [session, {}, start, context])
            result = first
            for state, data in steps(start, first):
                result = await request("execute", [session, data, state, context])
            return result
        finally:
            with contextlib.suppress(TrytonError, BackendUnavailable):
                await request("delete", [session, self.context])

    async def guarded(self, operation: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """Run under the guard; an unavailable Tryton becomes BackendUnavailable."""
        try:
            return await self.guard.call(operation, idempotent=idempotent)
        except CircuitOpen as exc:
            raise BackendUnavailable(
                BACKEND,
                "circuit open: Tryton failed repeatedly",
                retry_after_seconds=exc.retry_after_seconds,
            ) from exc
        except RemoteUnavailable as exc:
            raise BackendUnavailable(
                BACKEND, exc.detail, retry_after_seconds=self.retry_after_seconds()
            ) from exc

    def retry_after_seconds(self) -> int:
        """Seconds until the breaker lets a call through again (1 when it is closed)."""
        breaker = self.guard.breaker
        if breaker.state is not BreakerState.OPEN:
            return 1
        opened = breaker.snapshot().get("opened_at")
        if not isinstance(opened, str):
            return 1
        from datetime import datetime

        remaining = (
            datetime.fromisoformat(opened) + breaker.reset_after - breaker.clock.now()
        ).total_seconds()
        return max(1, int(remaining + 0.999))

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Serialise work on one business key (a reference, a SKU in a warehouse) in this process.

        Tryton enforces no uniqueness on references; across gateway processes the same key
        could still race (see docs/decisions/0004-tryton-adapter.md).
        """
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield

    async def cached(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """Reference data (company currency, journals, locations) read once per client."""
        if key not in self._cache:
            self._cache[key] = await load()
        value: T = self._cache[key]
        return value

    # ------------------------------------------------------------------ transport

    async def _model_call(
        self, model: str, method: str, args: tuple[Any, ...], context: dict[str, Any] | None
    ) -> Any:
        await self._ensure_session()
        return await self._request(
            f"model.{model}.{method}", [*args, {**self.context, **(context or {})}]
        )

    async def _ensure_session(self) -> None:
        if self._authorization is None:
            await self._login(self._session_generation)

    async def _login(self, generation: int) -> None:
        async with self._login_lock:
            if self._authorization is not None and self._session_generation != generation:
                return  # another call logged in meanwhile
            conn = self.connection
            answer = await self._post(
                "common.db.login", [conn.username, {"password": conn.password}], auth=False
            )
            uid, session, *_ = answer
            token = base64.b64encode(f"{conn.username}:{uid}:{session}".encode()).decode()
            self._authorization = f"Session {token}"
            self._session_generation += 1
            self.uid = uid
            preferences: dict[str, Any] = await self._post(
                "model.res.user.get_preferences", [True, {}]
            )
            self.context = preferences

    async def _request(self, method: str, params: list[Any]) -> Any:
        """One call on the database; on 401 log in again and try once more."""
        await self._ensure_session()
        generation = self._session_generation
        try:
            return await self._post(method, params)
        except _SessionExpired:
            self._authorization = None
            await self._login(generation)
            try:
                return await self._post(method, params)
            except _SessionExpired as exc:
                raise TrytonUnavailable("Tryton refused a fresh session (HTTP 401)") from exc

    async def _post(self, method: str, params: list[Any], *, auth: bool = True) -> Any:
        self._next_id += 1
        body = json.dumps({"id": self._next_id, "method": method, "params": params}, default=encode)
        with span(f"tryton {method}", kind="client", attributes={"rpc.method": method}) as call:
            # The work's correlation id and trace context, so Tryton's logs can be matched.
            headers = {"Content-Type": "application/json", **outbound_headers()}
            if auth and self._authorization:
                headers["Authorization"] = self._authorization
            response = await self._http.post(
                self.connection.database_url, content=body, headers=headers
            )
            call.set_attribute("http.response.status_code", response.status_code)
        if response.status_code == 401:
            if not auth:
                raise TrytonUnavailable("Tryton refused the adapter's login (HTTP 401)")
            raise _SessionExpired
        if response.status_code >= 500:
            raise TrytonUnavailable(f"HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code != 200:
            raise TrytonError(
                f"HTTP {response.status_code}", response.text[:500], response.status_code
            )
        answer = json.loads(response.text, object_hook=decode)
        error = answer.get("error")
        if error is not None:
            if isinstance(error, list) and error:
                raise TrytonError(str(error[0]), error[1] if len(error) > 1 else None)
            raise TrytonError(str(error), None)
        return answer.get("result")


class _SessionExpired(Exception):
    """HTTP 401 on a model call: the session is gone (idle too long, or deleted)."""
