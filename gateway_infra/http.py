"""ASGI middleware every app of the gateway shares: request metrics, correlation ids and trace
context, the request timeout, body size and media type.

Each layer app installs it so it behaves the same alone or mounted; a mounted app sees the marks
its parent left in the scope and does not repeat the work.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable

from fastapi import FastAPI, HTTPException
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway_infra.correlation import (
    CORRELATION_HEADER,
    TRACEPARENT_HEADER,
    accept_correlation_id,
    correlation_id_var,
    parse_traceparent,
    trace_context_var,
)
from gateway_infra.metrics import count_request
from gateway_infra.problems import (
    INTERNAL_ERROR,
    PAYLOAD_TOO_LARGE,
    PROBLEM_MEDIA_TYPE,
    TIMEOUT,
    UNSUPPORTED_MEDIA_TYPE,
    ProblemType,
    problem_body,
)
from gateway_infra.problems import install_problem_handlers as _install_problem_handlers
from gateway_infra.tracing import span

NO_NATIVE_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}
"""Every app of the gateway passes this as FastAPI(telemetry=...): requests are traced by
CommonHttpMiddleware and measured by gateway_infra.metrics; FastAPI's own instrumentation would
record them a second time (and look up the OpenTelemetry providers on every request)."""

_CORRELATION_MARK = "gateway.correlation_id"
log = logging.getLogger("gateway.http")
_HEADER_BYTES = CORRELATION_HEADER.lower().encode()
_TRACEPARENT_BYTES = TRACEPARENT_HEADER.encode()


async def send_problem(send: Send, problem: ProblemType, detail: str | None = None) -> None:
    body = json.dumps(problem_body(problem, detail)).encode()
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    correlation_id = correlation_id_var.get()
    if correlation_id:
        headers.append((_HEADER_BYTES, correlation_id.encode()))
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_BODYLESS_METHODS = ("GET", "HEAD", "OPTIONS", "DELETE")


class _BodyTooLarge(HTTPException):
    """Raised from receive(); FastAPI re-raises HTTP exceptions met while reading a body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"at most {limit} bytes are accepted")


_TIMEOUT_MARK = "gateway.deadline"


class CommonHttpMiddleware:
    """The edge every app of the gateway shares, as one pure ASGI middleware (one frame and one
    wrapper of `send` per request instead of one per concern), outermost first:

    - request metrics (the root app only, `count_requests`): every answer counted with its
      latency (gateway_infra.metrics.count_request), those of the layers below too;
    - correlation: accepts or creates X-Correlation-ID and the W3C trace context
      (`traceparent`), exposes them to the work and echoes them on the response; the request is
      one (server) span of the trace; an unhandled error still gets a 500 problem with the id;
    - timeout: 504 problem+json when a request is still unanswered after `timeout_seconds`;
    - body guard: bodies above `max_body_bytes` get 413 and, where JSON is expected
      (`json_only`, except under `exempt_paths`), other media types 415.

    A mounted app sees the marks its parent left in the scope and does not repeat the
    correlation (and metrics) or the timeout; the body guard is each app's own.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        timeout_seconds: float | None = None,
        json_only: bool = True,
        exempt_paths: Iterable[str] = (),
        count_requests: bool = False,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds
        self.json_only = json_only
        self.exempt_paths = tuple(exempt_paths)
        self.count_requests = count_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _CORRELATION_MARK in scope:
            if scope["method"] in _BODYLESS_METHODS and (
                self.timeout_seconds is None or _TIMEOUT_MARK in scope
            ):
                await self.app(scope, receive, send)  # nothing of this app's own to do
            else:
                await self._within_deadline(scope, receive, send, None)
            return
        arrived = time.perf_counter()
        entry_root = str(scope.get("root_path", ""))
        supplied = None
        traceparent = None
        for name, value in scope.get("headers", ()):
            if name == _HEADER_BYTES and supplied is None:
                supplied = value.decode("latin-1")
            elif name == _TRACEPARENT_BYTES and traceparent is None:
                traceparent = value.decode("latin-1")
        correlation_id = accept_correlation_id(supplied)
        scope[_CORRELATION_MARK] = correlation_id
        token = correlation_id_var.set(correlation_id)
        # An invalid or missing traceparent starts a new trace, as the recommendation says.
        caller_token = trace_context_var.set(parse_traceparent(traceparent))
        method = scope.get("method", "")
        status = 500
        started = False
        counted = not self.count_requests

        def count() -> None:
            nonlocal counted
            if not counted:
                counted = True
                count_request(scope, entry_root, status, time.perf_counter() - arrived)

        try:
            # Named by the method until the route is known (no raw paths in span names).
            with span(
                method or "HTTP",
                kind="server",
                attributes={"http.request.method": method, "url.path": scope.get("path", "")},
            ) as request_span:
                echoed = (
                    (_HEADER_BYTES, correlation_id.encode()),
                    (_TRACEPARENT_BYTES, request_span.context.traceparent.encode()),
                )

                async def answer(message: Message) -> None:
                    nonlocal status, started
                    if message["type"] == "http.response.start":
                        started = True
                        headers = [
                            h
                            for h in message.get("headers", ())
                            if h[0].lower() not in (_HEADER_BYTES, _TRACEPARENT_BYTES)
                        ]
                        headers.extend(echoed)
                        message["headers"] = headers
                        status = int(message["status"])
                        request_span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            request_span.fail(f"HTTP {status}")
                    elif message["type"] == "http.response.body" and not message.get(
                        "more_body", False
                    ):
                        count()
                    await send(message)

                try:
                    await self._within_deadline(scope, receive, answer, lambda: started)
                except Exception:
                    # Answered here, inside the correlation scope, so the 500 and its log line
                    # carry the id. When a mounted app already answered (and logged) it, there
                    # is nothing to add.
                    if not started:
                        log.exception("unhandled error", extra={"path": scope.get("path")})
                        await send_problem(answer, INTERNAL_ERROR)
                route = scope.get("route")
                route_path = getattr(route, "path_format", None) or getattr(route, "path", None)
                if isinstance(route_path, str):
                    request_span.rename(
                        f"{scope.get('method', '')} {scope.get('root_path', '')}{route_path}"
                    )
        finally:
            trace_context_var.reset(caller_token)
            correlation_id_var.reset(token)
            count()  # no complete answer (an error, a client gone): counted all the same

    async def _within_deadline(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        response_started: Callable[[], bool] | None,
    ) -> None:
        """The body guard and the app within the timeout, unless an enclosing app set one."""
        if self.timeout_seconds is None or _TIMEOUT_MARK in scope:
            await self._guarded(scope, receive, send)
            return
        scope[_TIMEOUT_MARK] = self.timeout_seconds
        if response_started is None:
            started = False

            async def tracking_send(message: Message) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            def response_started() -> bool:
                return started

            inner_send: Send = tracking_send
        else:
            inner_send = send
        deadline = asyncio.timeout(self.timeout_seconds)
        try:
            async with deadline:
                await self._guarded(scope, receive, inner_send)
        except TimeoutError:
            if not deadline.expired() or response_started():
                raise
            await send_problem(send, TIMEOUT, f"no answer within {self.timeout_seconds:g} s")

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app, behind the body guard (requests with a body only)."""
        if scope["method"] in _BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared > self.max_body_bytes:
                await send_problem(
                    send, PAYLOAD_TOO_LARGE, f"at most {self.max_body_bytes} bytes are accepted"
                )
                return
        has_body = (length is not None and length != b"0") or b"transfer-encoding" in headers
        path = scope.get("path", "")
        if self.json_only and has_body and not path.startswith(self.exempt_paths):
            media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
            if not (media_type == b"application/json" or media_type.endswith(b"+json")):
                await send_problem(send, UNSUPPORTED_MEDIA_TYPE)
                return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if response_started:
                raise
            await send_problem(
                send, PAYLOAD_TOO_LARGE, f"at most {self.max_body_bytes} bytes are accepted"
            )


def install_common_http(
    app: FastAPI,
    *,
    max_body_bytes: int,
    timeout_seconds: float | None = None,
    json_only: bool = True,
    exempt_paths: Iterable[str] = (),
    count_requests: bool = False,
) -> None:
    """Problem handlers and the shared middleware (CommonHttpMiddleware): request metrics when
    `count_requests` (the root app), correlation, timeout, body guard."""
    _install_problem_handlers(app)
    app.add_middleware(
        CommonHttpMiddleware,
        max_body_bytes=max_body_bytes,
        timeout_seconds=timeout_seconds,
        json_only=json_only,
        exempt_paths=tuple(exempt_paths),
        count_requests=count_requests,
    )
