"""Access tokens for the gateway's own HTTP calls between layers (client credentials, cached)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from gateway_infra.correlation import outbound_headers


@dataclass(frozen=True)
class ClientCredentials:
    """Where and as whom to ask for tokens."""

    token_url: str
    client_id: str
    client_secret: str
    scope: str


class ClientCredentialsToken:
    """Fetches a token from the token endpoint and reuses it until shortly before it expires."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        credentials: ClientCredentials,
        *,
        refresh_margin_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self._token_url = credentials.token_url
        self._auth = httpx.BasicAuth(credentials.client_id, credentials.client_secret)
        self._scope = credentials.scope
        self._margin = refresh_margin_seconds
        self._token: str | None = None
        self._valid_until = 0.0
        self._lock = asyncio.Lock()

    async def bearer(self) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._valid_until:
                response = await self._client.post(
                    self._token_url,
                    data={"grant_type": "client_credentials", "scope": self._scope},
                    auth=self._auth,
                    # Fetched for a call in progress: part of its correlation and trace.
                    headers=outbound_headers(),
                )
                response.raise_for_status()
                body = response.json()
                self._token = str(body["access_token"])
                lifetime = float(body.get("expires_in", 300))
                self._valid_until = time.monotonic() + max(lifetime - self._margin, 1.0)
            return self._token

    def forget(self) -> None:
        """Drop the cached token (after a 401: the key may have rotated or the client changed)."""
        self._token = None
