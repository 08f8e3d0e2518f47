"""The ops console (/ops): server-rendered pages for people over the process layer's services.

Operators sign in with a password (accounts from `retail-gateway operators add`); the session
cookie is HttpOnly, SameSite=Strict and Secure (unless GATEWAY_OPS_COOKIE_SECURE=false for plain
http development). Every POST carries the session's CSRF token (the sign-in form a token of its
own, double-submitted in a cookie), and failed sign-ins are limited per username and address,
with looser caps per username and per address.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import JsonValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contracts.exceptions import (
    ExceptionRecord,
    ExceptionStatus,
    ResolveAction,
    Severity,
)
from contracts.order import OrderStatus
from gateway_infra.clock import Clock
from gateway_infra.delivery import DeadLetterQuery, Delivery, NotReplayable, UnknownDelivery
from gateway_infra.http import NO_NATIVE_TELEMETRY, install_common_http
from gateway_infra.logging import redact_text
from gateway_infra.problems import ProblemError
from gateway_infra.settings import Settings
from gateway_infra.throttle import Throttle
from gateway_infra.unit_of_work import UnitOfWork
from process_api.audit import AuditLog
from process_api.audit.log import record as audit_entry
from process_api.console.operators import Operators, Session
from process_api.console.overview import ConsoleReads
from process_api.deliveries.service import DeliveryOperations
from process_api.exceptions.errors import ActionNotApplicable, ExceptionClosed, ExceptionNotFound
from process_api.exceptions.service import ExceptionQueue, Recorded
from process_api.order_to_cash.service import OrderService

HERE = Path(__file__).parent
log = logging.getLogger("gateway.console")
SESSION_COOKIE = "ops_session"
SIGN_IN_COOKIE = "ops_sign_in"
THROTTLE_NAMESPACE = "ops-sign-in"
CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_-]{1,63}$")
WORKFLOW = re.compile(r"^[a-z_]{1,40}$")
TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
IDENTIFIER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NOTICES = {
    "acknowledged": "Exception acknowledged.",
    "resolved": "Exception resolved.",
    "ignored": "Exception ignored.",
    "retrying": "The failed step runs again; the exception resolves when it succeeds.",
    "replayed": "Dead letter replayed: a new series of delivery attempts has started.",
    "signed_out": "Signed out.",
}
# The notice after resolving, by the exception's new status; still open: a retry is running.
CLOSED_NOTICES = {ExceptionStatus.RESOLVED: "resolved", ExceptionStatus.IGNORED: "ignored"}
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class SignInRequired(Exception):
    """No live session: the operator is sent to the sign-in page."""


class ConsoleError(Exception):
    """A request the console refuses, shown as a page with this status and message."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class SecurityHeadersMiddleware:
    """Headers every console answer carries: no framing, no foreign resources, no caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in SECURITY_HEADERS if n not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


async def require_session(request: Request) -> Session:
    """The operator's live session, or off to the sign-in page."""
    operators: Operators = request.app.state.operators
    session = await operators.session(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired()
    return session


SessionDep = Annotated[Session, Depends(require_session)]


def create_console_app(
    *,
    settings: Settings,
    clock: Clock,
    operators: Operators,
    reads: ConsoleReads,
    orders: OrderService,
    exceptions: ExceptionQueue,
    audit: AuditLog,
    throttle: Throttle,
    deliveries: DeliveryOperations | None = None,
) -> FastAPI:
    """The console app; mounted at /ops by the composition root."""
    app = FastAPI(
        telemetry=NO_NATIVE_TELEMETRY,
        title="Retail Sync Gateway: ops console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.operators = operators
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["age"] = lambda value: _age(clock.now(), value)
    templates.env.filters["when"] = _when
    # Free texts (exception details and notes, reasons of status changes) may carry a buyer's
    # e-mail address or phone number someone copied in; an operator does not need them to act,
    # so the pages mask them as the logs do.
    templates.env.filters["masked"] = lambda value: redact_text(value) if value else value
    install_common_http(
        app,
        max_body_bytes=settings.max_body_bytes,
        timeout_seconds=settings.request_timeout_seconds,
        json_only=False,
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def cookie_path(request: Request) -> str:
        return str(request.scope.get("root_path") or "") or "/"

    def set_cookie(response: Response, request: Request, name: str, value: str, age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=age,
            path=cookie_path(request),
            secure=settings.ops_cookie_secure,
            httponly=True,
            samesite="strict",
        )

    def page(
        request: Request,
        name: str,
        context: dict[str, Any],
        *,
        session: Session | None,
        status_code: int = 200,
        headers: dict[str, str] | None = None,
    ) -> HTMLResponse:
        notice = NOTICES.get(request.query_params.get("notice", ""))
        return templates.TemplateResponse(
            request,
            name,
            {
                "session": session,
                "notice": notice,
                "now": clock.now(),
                "url": lambda name, **params: console_path(request, name, **params),
                **context,
            },
            status_code=status_code,
            headers=headers,
        )

    def check_csrf(session: Session, token: str) -> None:
        if not token or not secrets.compare_digest(token.encode(), session.csrf_token.encode()):
            raise ConsoleError(403, "The form is stale or was not sent by the console: reload it.")

    def redirect(request: Request, route: str, notice: str | None = None, **path: Any) -> Response:
        url = console_path(request, route, **path)
        if notice:
            url += "?" + urlencode({"notice": notice})
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, _exc: SignInRequired) -> Response:
        target = request.url.path
        if request.url.query and request.method == "GET":
            target += "?" + request.url.query
        url = console_path(request, "sign_in") + "?" + urlencode({"next": target})
        return RedirectResponse(url, status_code=303)

    @app.exception_handler(ConsoleError)
    async def console_error(request: Request, exc: ConsoleError) -> Response:
        session = await operators.session(request.cookies.get(SESSION_COOKIE))
        return page(
            request,
            "error.html",
            {"status": exc.status_code, "message": exc.message},
            session=session,
            status_code=exc.status_code,
        )

    # ------------------------------------------------------------ signing in and out

    def sign_in_form(
        request: Request, error: str | None, status_code: int, headers: dict[str, str] | None = None
    ) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = page(
            request,
            "sign_in.html",
            {"error": error, "form_token": token, "next": _safe_next(request)},
            session=None,
            status_code=status_code,
            headers=headers,
        )
        set_cookie(response, request, SIGN_IN_COOKIE, token, 3600)
        return response

    @app.get("/sign-in", name="sign_in", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        return sign_in_form(request, None, 200)

    @app.post("/sign-in", response_class=HTMLResponse)
    async def sign_in(
        request: Request,
        username: Annotated[str, Form(max_length=64)] = "",
        password: Annotated[str, Form(max_length=1024)] = "",
        form_token: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        cookie = request.cookies.get(SIGN_IN_COOKIE, "")
        if (
            not form_token
            or not cookie
            or not secrets.compare_digest(form_token.encode(), cookie.encode())
        ):
            return sign_in_form(request, "The form expired: please try again.", 403)
        username = username.strip().lower()
        address = request.client.host if request.client else "unknown"
        # Only failures count: the tight limit per username and address, so a stranger's
        # guesses do not lock the operator out elsewhere; looser caps per username (guessing
        # from many addresses) and per address (trying many usernames).
        buckets = (
            (f"pair:{username}|{address}", settings.ops_sign_in_throttle),
            (f"user:{username}", settings.ops_sign_in_wide_throttle),
            (f"address:{address}", settings.ops_sign_in_wide_throttle),
        )
        for subject, tier in buckets:
            decision = await throttle.peek(THROTTLE_NAMESPACE, subject, tier)
            if not decision.allowed:
                return sign_in_form(
                    request,
                    f"Too many sign-in attempts: try again in {decision.retry_after} s.",
                    429,
                    headers={"Retry-After": str(decision.retry_after or 1)},
                )
        signed_in = await operators.sign_in(username, password) if username else None
        if signed_in is None:
            for subject, tier in buckets:
                await throttle.check(THROTTLE_NAMESPACE, subject, tier)
            return sign_in_form(request, "Wrong username or password.", 401)
        await throttle.clear(THROTTLE_NAMESPACE, buckets[0][0], buckets[0][1])
        response = RedirectResponse(
            _safe_next(request) or console_path(request, "overview"), status_code=303
        )
        set_cookie(response, request, SESSION_COOKIE, signed_in.token, settings.ops_session_seconds)
        response.delete_cookie(SIGN_IN_COOKIE, path=cookie_path(request))
        return response

    @app.post("/sign-out", name="sign_out")
    async def sign_out(
        request: Request, session: SessionDep, csrf_token: Annotated[str, Form()] = ""
    ) -> Response:
        check_csrf(session, csrf_token)
        await operators.sign_out(request.cookies.get(SESSION_COOKIE, ""), session.operator)
        response = redirect(request, "sign_in", "signed_out")
        response.delete_cookie(
            SESSION_COOKIE,
            path=cookie_path(request),
            secure=settings.ops_cookie_secure,
            httponly=True,
            samesite="strict",
        )
        return response

    # ------------------------------------------------------------ pages

    @app.get("/", name="overview", response_class=HTMLResponse)
    async def overview(request: Request, session: SessionDep) -> Response:
        return page(request, "overview.html", {"channels": await reads.overview()}, session=session)

    @app.get("/orders", name="orders", response_class=HTMLResponse)
    async def order_list(
        request: Request,
        session: SessionDep,
        channel: str = "",
        status: str = "",
        cursor: Annotated[str, _bounded()] = "",
    ) -> Response:
        chosen_channel = _filter(channel, CHANNEL, "channel")
        chosen_status = _choice(status, OrderStatus, "status")
        try:
            found = await orders.list(
                channel=chosen_channel,
                statuses=[chosen_status] if chosen_status else (),
                cursor=cursor or None,
                limit=50,
            )
        except ProblemError as exc:
            raise ConsoleError(422, "That page of orders does not exist.") from exc
        return page(
            request,
            "orders.html",
            {
                "orders": found.items,
                "next_cursor": found.next_cursor,
                "filters": {"channel": chosen_channel or "", "status": status},
                "statuses": [s.value for s in OrderStatus],
            },
            session=session,
        )

    @app.get("/orders/{order_id}", name="journey", response_class=HTMLResponse)
    async def journey(request: Request, session: SessionDep, order_id: str) -> Response:
        if not IDENTIFIER.match(order_id):
            raise ConsoleError(404, "No such order.")
        found = await reads.journey(order_id)
        if found is None:
            raise ConsoleError(404, f"No order {order_id}.")
        return page(request, "journey.html", {"journey": found}, session=session)

    @app.get("/exceptions", name="exceptions", response_class=HTMLResponse)
    async def exception_queue(
        request: Request,
        session: SessionDep,
        channel: str = "",
        severity: str = "",
        team: str = "",
        status: str = "",
        workflow: str = "",
    ) -> Response:
        chosen_status = _choice(status, ExceptionStatus, "status")
        chosen_severity = _choice(severity, Severity, "severity")
        items = await exceptions.list(
            status=chosen_status,
            channel=_filter(channel, CHANNEL, "channel"),
            workflow=_filter(workflow, WORKFLOW, "workflow"),
            owner_team=_filter(team, TEAM, "team"),
            severity=chosen_severity,
            limit=200,
        )
        return page(
            request,
            "exceptions.html",
            {
                "items": items,
                "filters": {
                    "channel": channel,
                    "severity": severity,
                    "team": team,
                    "status": status,
                    "workflow": workflow,
                },
                "severities": [s.value for s in Severity],
                "statuses": [s.value for s in ExceptionStatus],
            },
            session=session,
        )

    @app.get("/exceptions/{exception_id}", name="exception", response_class=HTMLResponse)
    async def exception_detail(
        request: Request, session: SessionDep, exception_id: str
    ) -> Response:
        record = await _exception(exception_id)
        return page(
            request,
            "exception.html",
            {"record": record, "actions": [a.value for a in ResolveAction]},
            session=session,
        )

    async def _exception(exception_id: str) -> ExceptionRecord:
        if not IDENTIFIER.match(exception_id):
            raise ConsoleError(404, "No such exception.")
        record = await exceptions.get(exception_id)
        if record is None:
            raise ConsoleError(404, f"No exception {exception_id}.")
        return record

    async def act_on_exception(
        request: Request,
        session: Session,
        exception_id: str,
        action: str,
        work: Callable[[str, Recorded], Awaitable[ExceptionRecord]],
        *,
        notice: str | None = None,
    ) -> Response:
        """Carry out `work` (given the operator as actor, and the audit entry to write in the
        transaction that records the outcome on the exception: both are kept, or neither), and
        go back to the exception's page with `notice`, or the one its new status calls for."""
        before = await _exception(exception_id)
        actor = session.operator.actor

        def audited(uow: UnitOfWork, after: ExceptionRecord) -> None:
            audit_entry(
                uow,
                actor=actor,
                action=f"exception.{action}",
                subject=f"exception/{exception_id}",
                channel=after.channel,
                before=_exception_state(before),
                after=_exception_state(after),
            )

        try:
            after = await work(actor, audited)
        except (ExceptionClosed, ActionNotApplicable) as exc:
            raise ConsoleError(409, str(exc)) from exc
        except ExceptionNotFound as exc:
            raise ConsoleError(404, f"No exception {exception_id}.") from exc
        except ProblemError as exc:  # e.g. the order service: an order that shipped
            raise ConsoleError(exc.problem.status, str(exc)) from exc
        shown = notice or CLOSED_NOTICES.get(after.status, "retrying")
        return redirect(request, "exception", shown, exception_id=exception_id)

    @app.post("/exceptions/{exception_id}/acknowledge", name="acknowledge")
    async def acknowledge(
        request: Request,
        session: SessionDep,
        exception_id: str,
        csrf_token: Annotated[str, Form()] = "",
        note: Annotated[str, Form(max_length=4000)] = "",
    ) -> Response:
        check_csrf(session, csrf_token)
        text = note.strip() or None
        return await act_on_exception(
            request,
            session,
            exception_id,
            "acknowledged",
            lambda actor, audited: exceptions.acknowledge(
                exception_id, actor=actor, note=text, also=audited
            ),
            notice="acknowledged",
        )

    @app.post("/exceptions/{exception_id}/resolve", name="resolve")
    async def resolve(
        request: Request,
        session: SessionDep,
        exception_id: str,
        csrf_token: Annotated[str, Form()] = "",
        action: Annotated[str, Form(max_length=32)] = "",
        note: Annotated[str, Form(max_length=4000)] = "",
    ) -> Response:
        check_csrf(session, csrf_token)
        chosen = _choice(action, ResolveAction, "action")
        if chosen is None:
            raise ConsoleError(422, "Choose an action.")
        text = note.strip() or None
        if chosen in (ResolveAction.FIXED_BY_HAND, ResolveAction.IGNORE) and not text:
            raise ConsoleError(422, f"{chosen.value} needs a note saying why.")
        return await act_on_exception(
            request,
            session,
            exception_id,
            f"resolve.{chosen.value}",
            lambda actor, audited: exceptions.resolve(
                exception_id, chosen, actor=actor, note=text, also=audited
            ),
        )

    @app.get("/dead-letters", name="dead_letters", response_class=HTMLResponse)
    async def dead_letters(request: Request, session: SessionDep, channel: str = "") -> Response:
        chosen = _filter(channel, CHANNEL, "channel")
        items: list[Delivery] = []
        if deliveries is not None:
            found = await deliveries.dead_letters(
                DeadLetterQuery(channel=chosen), cursor=None, limit=200
            )
            items = found.items
        return page(
            request,
            "dead_letters.html",
            {"items": items, "filters": {"channel": channel}, "available": deliveries is not None},
            session=session,
        )

    @app.post("/dead-letters/{delivery_id}/replay", name="replay")
    async def replay(
        request: Request,
        session: SessionDep,
        delivery_id: int,
        csrf_token: Annotated[str, Form()] = "",
    ) -> Response:
        check_csrf(session, csrf_token)
        if deliveries is None or not 1 <= delivery_id <= 2**62:
            raise ConsoleError(404, "No such delivery.")
        before = await deliveries.get(delivery_id)
        actor = session.operator.actor

        def audited(uow: UnitOfWork, after: Delivery) -> None:
            audit_entry(
                uow,
                actor=actor,
                action="delivery.replayed",
                subject=f"delivery/{delivery_id}",
                channel=after.channel,
                before=None if before is None else _delivery_state(before),
                after=_delivery_state(after),
            )

        try:
            await deliveries.replay(delivery_id, actor=actor, also=audited)
        except UnknownDelivery as exc:
            raise ConsoleError(404, str(exc)) from exc
        except NotReplayable as exc:
            raise ConsoleError(409, str(exc)) from exc
        return redirect(request, "dead_letters", "replayed")

    @app.get("/audit", name="audit", response_class=HTMLResponse)
    async def audit_log(
        request: Request,
        session: SessionDep,
        actor: Annotated[str, _bounded(200)] = "",
        subject: Annotated[str, _bounded(200)] = "",
        before: Annotated[str, _bounded()] = "",
    ) -> Response:
        before_id = int(before) if before.isdigit() and len(before) < 18 else None
        entries = await audit.entries(
            actor=actor.strip() or None,
            subject=subject.strip() or None,
            before_id=before_id,
            limit=101,
        )
        more = len(entries) > 100
        entries = entries[:100]
        return page(
            request,
            "audit.html",
            {
                "entries": entries,
                "older": entries[-1].id if more and entries else None,
                "filters": {"actor": actor, "subject": subject},
            },
            session=session,
        )

    return app


def console_path(request: Request, name: str, **params: Any) -> str:
    """The path of one of the console's own routes, below where it is mounted. (Starlette's
    url_for searches every mounted app by name, and the process API has routes of the same
    names.)"""
    root = str(request.scope.get("root_path") or "")
    return root + str(request.app.url_path_for(name, **params))


def _bounded(length: int = 100) -> Any:
    return Query(max_length=length)


def _filter(value: str, pattern: re.Pattern[str], name: str) -> str | None:
    value = value.strip()
    if not value:
        return None
    if not pattern.match(value):
        raise ConsoleError(422, f"The {name} filter {value[:64]!r} is not valid.")
    return value


E = TypeVar("E", bound=StrEnum)


def _choice(value: str, kind: type[E], name: str) -> E | None:
    if not value:
        return None
    try:
        return kind(value)
    except ValueError:
        raise ConsoleError(422, f"The {name} {value[:64]!r} is not one of the choices.") from None


def _safe_next(request: Request) -> str | None:
    """Where to go after signing in: only a path of this console (no open redirect)."""
    target = request.query_params.get("next", "")
    root = str(request.scope.get("root_path") or "")
    if (
        target.startswith(root + "/")
        and not target.startswith("//")
        and "\\" not in target
        and len(target) < 500
    ):
        return target
    return None


def _exception_state(record: ExceptionRecord) -> JsonValue:
    return {
        "status": record.status.value,
        "severity": record.severity.value,
        "owner_team": record.owner_team,
        "due_at": record.due_at.isoformat() if record.due_at else None,
        "occurrences": record.occurrences,
    }


def _delivery_state(delivery: Delivery) -> JsonValue:
    return {
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "subscription_id": delivery.subscription_id,
        "last_error": delivery.last_error,
        "dead_at": delivery.dead_at.isoformat() if delivery.dead_at else None,
    }


def _age(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "-"
    seconds = int((now - then).total_seconds())
    future = seconds < 0
    seconds = abs(seconds)
    if seconds < 120:
        text = f"{seconds} s"
    elif seconds < 7200:
        text = f"{seconds // 60} min"
    elif seconds < 172800:
        text = f"{seconds // 3600} h {seconds % 3600 // 60} min"
    else:
        text = f"{seconds // 86400} d"
    return f"in {text}" if future else text


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")
