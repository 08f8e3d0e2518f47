"""The partner edge every partner endpoint stands behind: the verified partner, its throttle,
idempotency for state-changing POSTs, and channel isolation."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Header, Request, Response, Security
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import OAuth2, SecurityScopes

from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.dependencies import (
    OAUTH2_DESCRIPTION,
    OAUTH2_FLOWS,
    OAUTH2_SCHEME_NAME,
    verified_principal,
)
from gateway_infra.metrics import THROTTLED
from gateway_infra.problems import FORBIDDEN, NOT_FOUND, ProblemError
from gateway_infra.settings import ThrottleTier
from gateway_infra.throttle import Throttle, add_response_headers, raise_if_throttled
from partner_api.idempotency import (
    IdempotencyStore,
    IdempotentRequest,
    parse_idempotency_key,
    request_fingerprint,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# Exactly what parse_idempotency_key accepts: a bare key of visible ASCII without the delimiters
# DQUOTE, comma, semicolon and backslash, or an RFC 8941 string in double quotes.
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "pattern": (
        "^([\\x21\\x23-\\x2b\\x2d-\\x3a\\x3c-\\x5b\\x5d-\\x7e]{1,255}"
        '|"([\\x20-\\x21\\x23-\\x5b\\x5d-\\x7e]|\\\\["\\\\]){1,255}")$'
    ),
    "examples": ['"0b5b7f8e-5d0c-4f4e-9a9b-1f0e3c2d4a55"', "order-4711-attempt-1"],
}


@dataclass(frozen=True)
class EdgeServices:
    """What the edge needs, injected by the app factory."""

    throttle: Throttle
    tiers: dict[str, ThrottleTier]
    idempotency: IdempotencyStore


@dataclass(frozen=True)
class Partner:
    """A verified marketplace client acting for its channel."""

    client_id: str
    channel: str
    scopes: frozenset[str]


class PartnerEdge(OAuth2):
    """The partner edge, as the OAuth2 scheme it documents: `Security(partner, scopes=[...])`.

    It reads the bearer token itself instead of depending on `oauth2_client_credentials`, so
    FastAPI solves one dependency level per request instead of two, while the OpenAPI documents
    show the same `oauth2` scheme (same name, flows and description) with the operation's scopes.
    """

    def __init__(self) -> None:
        super().__init__(
            flows=OAUTH2_FLOWS,
            scheme_name=OAUTH2_SCHEME_NAME,
            description=OAUTH2_DESCRIPTION,
            auto_error=False,
        )

    async def __call__(  # type: ignore[override]
        self, request: Request, security_scopes: SecurityScopes
    ) -> Partner:
        """The calling partner, throttled per verified client id (never a caller-chosen header)."""
        return await self.admit(request, security_scopes.scopes)

    async def admit(self, request: Request, required_scopes: Sequence[str]) -> Partner:
        """What `__call__` does, with the scopes the operation requires."""
        principal = await verified_principal(
            request, required_scopes, request.headers.get("authorization")
        )
        if principal.kind is not ClientKind.PARTNER or not principal.channel:
            raise ProblemError(FORBIDDEN, "only partner clients may call the partner API")
        edge: EdgeServices = request.app.state.edge
        tier = edge.tiers.get(principal.throttle_tier) or edge.tiers["standard"]
        decision = await edge.throttle.check("partner", principal.client_id, tier)
        add_response_headers(request, decision.headers)
        if not decision.allowed:
            THROTTLED.labels("partner", principal.client_id).inc()
        raise_if_throttled(decision)
        return Partner(
            client_id=principal.client_id, channel=principal.channel, scopes=principal.scopes
        )


partner = PartnerEdge()
"""The calling partner: `Security(partner, scopes=[...])` in a partner endpoint."""

_ADMITTED = "gateway.partner"
"""Scope key of the partner PartnerRoute admitted before FastAPI solved the rest."""


class PartnerRoute(APIRoute):
    """A partner operation. Where the edge is the operation's first dependency and the request
    has no body, the edge runs before FastAPI's handler and is left out of what FastAPI solves:
    one dependency level less per request (with its SecurityScopes and cache bookkeeping).

    Nothing changes for the caller: FastAPI solves sub-dependencies in the order declared and
    checks parameters only after them, so the edge was the first thing to run (and to refuse,
    401/403/429) already; without a body there is nothing read before it. The OpenAPI document
    is built from the declared dependencies, edge included, as before. Operations with a body
    (read and parsed before dependencies), or that reach the edge otherwise, keep it as a
    dependency.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        edge: PartnerEdge = partner
        admit = edge.admit
        declared = self.dependant
        leading = declared.dependencies[0] if declared.dependencies else None
        if (
            self.body_field is not None
            or not inspect.iscoroutinefunction(declared.call)
            or leading is None
            or leading.call is not edge
            or leading.name is None
            or _calls_edge(declared.dependencies[1:])
            or any(_calls_edge(d.dependencies) for d in declared.dependencies)
        ):
            return super().get_route_handler()
        scopes = tuple(
            dict.fromkeys([*(leading.parent_oauth_scopes or ()), *(leading.own_oauth_scopes or ())])
        )
        self.dependant = replace(
            declared,
            dependencies=declared.dependencies[1:],
            call=_given_caller(declared, leading.name),
            request_param_name=declared.request_param_name or _REQUEST_PARAM,
        )
        try:
            handle = super().get_route_handler()
        finally:
            self.dependant = declared

        async def admitted_first(request: Request) -> Response:
            request.scope[_ADMITTED] = await admit(request, scopes)
            return await handle(request)

        return admitted_first


_REQUEST_PARAM = "_partner_request"


def _calls_edge(dependants: Sequence[Dependant]) -> bool:
    return any(d.call is partner or _calls_edge(d.dependencies) for d in dependants)


def _given_caller(declared: Dependant, caller_name: str) -> Callable[..., Any]:
    """The endpoint, called with the partner PartnerRoute admitted as its `caller_name`."""
    endpoint = declared.call
    assert endpoint is not None
    request_param = declared.request_param_name or _REQUEST_PARAM
    keeps_request = declared.request_param_name is not None

    @functools.wraps(endpoint)
    async def call(**values: Any) -> Any:
        request: Request = values[request_param] if keeps_request else values.pop(request_param)
        values[caller_name] = request.scope[_ADMITTED]
        return await endpoint(**values)

    return call


@dataclass(frozen=True)
class IdempotentCall:
    """A state-changing partner request: who calls, and its idempotency record."""

    caller: Partner
    idempotency: IdempotentRequest


async def idempotent(
    request: Request,
    caller: Annotated[Partner, Security(partner)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=IDEMPOTENCY_HEADER,
            description=(
                "Required. A unique key per operation: a quoted string or a token of at most 255 "
                "characters. Retrying with the same key and payload replays the first answer "
                "(header Idempotent-Replayed: true); another payload gets 422, a retry while "
                "the first is running 409. Keys are kept for the retention the API description "
                "states (24 hours unless configured otherwise)."
            ),
        ),
    ] = None,
) -> IdempotentCall:
    """The caller and the idempotency record of this POST; 400 when the key is missing/malformed."""
    key = parse_idempotency_key(idempotency_key)
    edge: EdgeServices = request.app.state.edge
    body = await request.body()
    fingerprint = request_fingerprint(request.method, request.url.path, body)
    return IdempotentCall(
        caller=caller,
        idempotency=IdempotentRequest(edge.idempotency, caller.client_id, key, fingerprint),
    )


def ensure_own(caller: Partner, channel: str, what: str, identifier: str) -> None:
    """A partner sees its channel's objects only; a foreign id answers just like a missing one."""
    if channel != caller.channel:
        raise ProblemError(NOT_FOUND, f"no {what} {identifier!r}")
