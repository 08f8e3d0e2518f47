"""RFC 9457 problem details: the one error format of every layer, with a stable type per problem.

Domain code raises ProblemError (or a subclass); install_problem_handlers maps it, FastAPI's own
errors and anything unexpected to application/problem+json once, at the edge.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway_infra.correlation import current_correlation_id

PROBLEM_MEDIA_TYPE = "application/problem+json"
log = logging.getLogger("gateway.problems")


@dataclass(frozen=True)
class ProblemType:
    """A kind of problem: its stable type URI, its title and its HTTP status."""

    code: str
    title: str
    status: int

    @property
    def uri(self) -> str:
        return f"/problems/{self.code}"


BAD_REQUEST = ProblemType("bad-request", "The request is malformed", 400)
UNAUTHORIZED = ProblemType("unauthorized", "Authentication is required", 401)
FORBIDDEN = ProblemType("forbidden", "The credentials do not allow this", 403)
NOT_FOUND = ProblemType("not-found", "No such resource", 404)
METHOD_NOT_ALLOWED = ProblemType("method-not-allowed", "Method not allowed on this resource", 405)
NOT_ACCEPTABLE = ProblemType("not-acceptable", "No acceptable representation", 406)
CONFLICT = ProblemType("conflict", "The request conflicts with the resource's state", 409)
GONE = ProblemType("gone", "No longer available", 410)
PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", "The request body is too large", 413)
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported-media-type", "The request body must be application/json", 415
)
VALIDATION_ERROR = ProblemType("validation-error", "The request is not valid", 422)
TOO_MANY_REQUESTS = ProblemType("too-many-requests", "Too many requests", 429)
INTERNAL_ERROR = ProblemType("internal-error", "Internal error", 500)
BACKEND_UNAVAILABLE = ProblemType("backend-unavailable", "A backend system is unavailable", 503)
TIMEOUT = ProblemType("timeout", "The request took too long", 504)

_BY_STATUS = {
    p.status: p
    for p in (
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        METHOD_NOT_ALLOWED,
        NOT_ACCEPTABLE,
        CONFLICT,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        VALIDATION_ERROR,
        TOO_MANY_REQUESTS,
        INTERNAL_ERROR,
        BACKEND_UNAVAILABLE,
        TIMEOUT,
    )
}


def problem_type_for_status(status: int) -> ProblemType:
    known = _BY_STATUS.get(status)
    if known is not None:
        return known
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    return ProblemType(f"http-{status}", phrase, status)


class ProblemError(Exception):
    """A domain error that the edge answers as problem+json."""

    def __init__(
        self,
        problem: ProblemType,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail or problem.title)
        self.problem = problem
        self.detail = detail
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_body(
    problem: ProblemType, detail: str | None = None, **extensions: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": problem.uri,
        "title": problem.title,
        "status": problem.status,
        "code": problem.code,
    }
    if detail:
        body["detail"] = detail
    correlation_id = current_correlation_id()
    if correlation_id:
        body["correlation_id"] = correlation_id
    body.update({k: v for k, v in extensions.items() if v is not None})
    return body


def problem_response(
    problem: ProblemType,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(problem, detail, **extensions),
        status_code=problem.status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def validation_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """One entry per invalid field: a JSON pointer into the body, or the parameter's name."""
    entries: list[dict[str, str]] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        message = str(error.get("msg", "invalid"))
        if loc and loc[0] == "body":
            pointer = "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in loc[1:])
            entries.append({"pointer": pointer, "detail": message})
        elif loc:
            entries.append({"parameter": loc[-1], "in": loc[0], "detail": message})
        else:
            entries.append({"pointer": "#/", "detail": message})
    return entries


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> str:
    """Every method the requested path answers (RFC 9110 Allow), across all of its routes: the
    router names only the methods of the first route whose path matched."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return ", ".join(allowed)


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of this app an application/problem+json response."""

    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return problem_response(exc.problem, exc.detail, headers=exc.headers, **exc.extensions)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        problem = problem_type_for_status(exc.status_code)
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != problem.title else None
        if detail in (HTTPStatus(exc.status_code).phrase,):
            detail = None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return problem_response(problem, detail, headers=headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = validation_errors(exc.errors())
        return problem_response(VALIDATION_ERROR, f"{len(errors)} invalid field(s)", errors=errors)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return problem_response(INTERNAL_ERROR)

    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)
