"""FastAPI dependencies every layer uses to authenticate callers and check declared scopes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import OAuth2, SecurityScopes

from gateway_infra.auth.scopes import ALL_SCOPES, Layer
from gateway_infra.auth.tokens import Principal, TokenRejected, TokenVerifier
from gateway_infra.problems import FORBIDDEN, UNAUTHORIZED, ProblemError

OAUTH2_FLOWS = OAuthFlows(
    clientCredentials=OAuthFlowClientCredentials(tokenUrl="/oauth/token", scopes=ALL_SCOPES)
)
OAUTH2_SCHEME_NAME = "oauth2"
OAUTH2_DESCRIPTION = "OAuth2 client credentials; access tokens are RFC 9068 JWTs (Bearer)."
"""The OAuth2 scheme every layer's OpenAPI document declares (a dependency that reads the
Authorization header, or a scheme of its own with these values, as the partner edge is)."""

oauth2_client_credentials = OAuth2(
    flows=OAUTH2_FLOWS,
    scheme_name=OAUTH2_SCHEME_NAME,
    description=OAUTH2_DESCRIPTION,
    auto_error=False,
)


@dataclass(frozen=True)
class LayerAuth:
    """How one layer app verifies tokens: the shared verifier and the layer's own audience."""

    verifier: TokenVerifier
    layer: Layer


def _challenge(layer: Layer, error: str | None = None, **params: str) -> dict[str, str]:
    parts = [f'Bearer realm="{layer.value}"']
    if error:
        parts.append(f'error="{error}"')
    parts.extend(f'{key}="{value}"' for key, value in params.items())
    return {"WWW-Authenticate": ", ".join(parts)}


async def authenticate(
    request: Request,
    security_scopes: SecurityScopes,
    authorization: Annotated[str | None, Depends(oauth2_client_credentials)],
) -> Principal:
    """The verified caller, holding every scope the operation declares (RFC 6750 errors)."""
    return await verified_principal(request, security_scopes.scopes, authorization)


async def verified_principal(
    request: Request, required_scopes: Sequence[str], authorization: str | None
) -> Principal:
    """What `authenticate` does, for a dependency that declares the OAuth2 scheme itself (one
    dependency less to solve per request on the partner edge)."""
    auth: LayerAuth = request.app.state.auth
    if not authorization:
        raise ProblemError(
            UNAUTHORIZED, "a Bearer access token is required", headers=_challenge(auth.layer)
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProblemError(
            UNAUTHORIZED,
            "the Authorization header must carry a Bearer token",
            headers=_challenge(auth.layer, "invalid_request"),
        )
    try:
        principal = await auth.verifier.verify(token.strip(), auth.layer)
    except TokenRejected as exc:
        raise ProblemError(
            UNAUTHORIZED,
            f"invalid access token: {exc}",
            headers=_challenge(auth.layer, "invalid_token"),
        ) from exc
    missing = [scope for scope in required_scopes if scope not in principal.scopes]
    if missing:
        raise ProblemError(
            FORBIDDEN,
            f"the access token lacks scope {' '.join(missing)}",
            headers=_challenge(auth.layer, "insufficient_scope", scope=" ".join(missing)),
            required_scopes=missing,
        )
    request.state.principal = principal
    return principal
