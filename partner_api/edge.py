"""The partner edge every partner endpoint stands behind: the verified partner, its throttle,
idempotency for state-changing POSTs, and channel isolation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Header, Request, Security
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
        principal = await verified_principal(
            request, security_scopes.scopes, request.headers.get("authorization")
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
