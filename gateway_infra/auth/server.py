"""The OAuth2 authorization server at the gateway's root: client-credentials token endpoint
(authlib's grant, run off the event loop), RFC 8414 metadata and the JWKS."""

from __future__ import annotations

import base64
import binascii
import logging
import urllib.parse
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientCredentialsGrant,
    ClientMixin,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from gateway_infra.auth.clients import ClientRecord, ClientRegistry
from gateway_infra.auth.keys import SigningKeys
from gateway_infra.auth.scopes import ALL_SCOPES
from gateway_infra.auth.tokens import TokenIssuer
from gateway_infra.metrics import THROTTLED
from gateway_infra.settings import ThrottleTier
from gateway_infra.throttle import Throttle

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
CLIENT_AUTH_FAILED = "client authentication failed"
BASIC_CHALLENGE = 'Basic realm="token", error="invalid_client"'
log = logging.getLogger("gateway.oauth")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _Client(ClientMixin):  # type: ignore[misc]
    """authlib's view of a registered client."""

    def __init__(self, record: ClientRecord, registry: ClientRegistry) -> None:
        self.record = record
        self._registry = registry

    def get_client_id(self) -> str:
        return self.record.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return self._registry.authenticate(self.record.client_id, client_secret) is not None

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in ("client_secret_basic", "client_secret_post")

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return str(list_to_scope(sorted(self.record.scopes)))
        return str(list_to_scope([s for s in scope_to_list(scope) if s in self.record.scopes]))

    def get_default_redirect_uri(self) -> None:
        return None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_response_type(self, response_type: str) -> bool:
        return False


class _FormPayload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, form: Mapping[str, str]) -> None:
        self._form = dict(form)

    @property
    def data(self) -> dict[str, str]:
        return self._form

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return defaultdict(list, {k: [v] for k, v in self._form.items()})


class _TokenRequest(OAuth2Request):  # type: ignore[misc]
    """A token request built from plain values: authlib has no Starlette integration."""

    def __init__(self, uri: str, headers: Mapping[str, str], form: Mapping[str, str]) -> None:
        super().__init__("POST", uri, headers=headers)
        self.payload = _FormPayload(form)

    @property
    def form(self) -> dict[str, str]:
        return dict(self.payload.data)

    @property
    def args(self) -> dict[str, str]:
        return {}


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def validate_requested_scope(self) -> None:
        super().validate_requested_scope()
        requested = set(scope_to_list(self.request.payload.scope) or [])
        if requested - self.client.record.scopes:
            raise InvalidScopeError()


class GatewayAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """authlib's server over our client registry and token issuer; synchronous, run in a thread."""

    def __init__(self, clients: ClientRegistry, issuer: TokenIssuer) -> None:
        super().__init__(scopes_supported=sorted(ALL_SCOPES))
        self.clients = clients
        self.issuer = issuer
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", self._generate_token)

    def _generate_token(
        self,
        grant_type: str,
        client: _Client,
        user: object = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        granted = scope_to_list(client.get_allowed_scope(scope)) or []
        token, lifetime = self.issuer.issue(client.record, granted)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": lifetime,
            "scope": " ".join(sorted(granted)),
        }

    def query_client(self, client_id: str) -> _Client | None:
        record = self.clients.get(client_id)
        if record is None or not record.active:
            return None
        return _Client(record, self.clients)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are self-contained JWTs: nothing to store."""

    def create_oauth2_request(self, request: _TokenRequest) -> _TokenRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """authlib's hook for framework signals; nothing listens here."""


def _readable_basic_credentials(authorization: str | None) -> bool:
    """False for Basic credentials that are not base64 of UTF-8 `id:secret` (authlib would fail)."""
    if not authorization or authorization[:6].lower() != "basic ":
        return True
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return ":" in decoded


def _oauth_error(status: int, error: str, description: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, **headers},
    )


def create_oauth_router(
    *,
    server: GatewayAuthorizationServer,
    keys: SigningKeys,
    issuer: str,
    throttle: Throttle,
    token_throttle: ThrottleTier,
) -> APIRouter:
    """Routes mounted at the gateway's root: /oauth/token and the two well-known documents."""
    router = APIRouter(include_in_schema=False)
    token_endpoint = f"{issuer}/oauth/token"

    @router.post("/oauth/token")
    async def token(request: Request) -> JSONResponse:
        client_ip = request.client.host if request.client else "unknown"
        decision = await throttle.check("oauth-token", client_ip, token_throttle)
        if not decision.allowed:
            THROTTLED.labels("oauth-token", "ip").inc()
            return _oauth_error(
                429, "too_many_requests", "too many token requests", **decision.headers
            )
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != FORM_MEDIA_TYPE:
            return _oauth_error(400, "invalid_request", f"the body must be {FORM_MEDIA_TYPE}")
        try:
            text = (await request.body()).decode("utf-8")
            pairs = urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            return _oauth_error(400, "invalid_request", "the body is not valid form data")
        form = dict(pairs)
        if len(form) != len(pairs):
            return _oauth_error(400, "invalid_request", "a parameter is repeated")
        if not _readable_basic_credentials(request.headers.get("authorization")):
            return _oauth_error(
                401, "invalid_client", CLIENT_AUTH_FAILED, **{"WWW-Authenticate": BASIC_CHALLENGE}
            )
        oauth_request = _TokenRequest(token_endpoint, request.headers, form)
        try:
            status, body, headers = await run_in_threadpool(
                server.create_token_response, oauth_request
            )
        except Exception:
            log.exception("token endpoint failed")
            return _oauth_error(500, "server_error", "the token could not be issued")
        if isinstance(body, dict) and body.get("error") == "invalid_client":
            # One answer whether the client id exists or not: nothing to learn by probing.
            body["error_description"] = CLIENT_AUTH_FAILED
            headers = [
                (name, BASIC_CHALLENGE if name.lower() == "www-authenticate" else value)
                for name, value in headers
            ]
        return JSONResponse(body, status_code=status, headers={**dict(headers), **NO_STORE})

    @router.get("/.well-known/oauth-authorization-server")
    async def metadata() -> dict[str, Any]:
        return {
            "issuer": issuer,
            "token_endpoint": token_endpoint,
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": sorted(ALL_SCOPES),
            "response_types_supported": [],
        }

    @router.get("/.well-known/jwks.json")
    async def jwks() -> JSONResponse:
        key_set = await run_in_threadpool(keys.jwks)
        return JSONResponse(key_set, headers={"Cache-Control": "public, max-age=60"})

    return router
