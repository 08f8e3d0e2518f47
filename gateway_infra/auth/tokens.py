"""Access tokens: RFC 9068 JWTs signed with the current key, and their verification per layer."""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from gateway_infra.auth.clients import ClientKind, ClientRecord, ClientRegistry
from gateway_infra.auth.keys import ALLOWED_ALGORITHMS, SigningKeys
from gateway_infra.auth.scopes import Layer, audience, layer_of
from gateway_infra.clock import Clock

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
VERIFIED_SIGNATURES = 4096
"""Tokens accepted per layer, remembered (least recently used dropped first): a client sends its
token with every request, and checking it in full was the largest cost of a read."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, as the verified token says."""

    client_id: str
    kind: ClientKind
    channel: str | None
    scopes: frozenset[str]
    token_id: str
    throttle_tier: str = "standard"


@dataclass(frozen=True)
class _Accepted:
    """A token that passed every check for one layer: who it names, and what can change."""

    principal: Principal
    kid: str
    expires_at: int
    not_before: int


class TokenRejected(Exception):
    """The access token is not acceptable (RFC 6750 invalid_token)."""


class TokenIssuer:
    """Mints access tokens for authenticated clients."""

    def __init__(self, keys: SigningKeys, clock: Clock, *, issuer: str, lifetime_seconds: int):
        self.keys = keys
        self.clock = clock
        self.issuer = issuer
        self.lifetime_seconds = lifetime_seconds

    def issue(self, client: ClientRecord, scopes: Iterable[str]) -> tuple[str, int]:
        granted = sorted(set(scopes))
        layers = sorted({layer_of(scope).value for scope in granted})
        now = int(self.clock.now().timestamp())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": [audience(self.issuer, Layer(layer)) for layer in layers],
            "sub": client.client_id,
            "client_id": client.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.lifetime_seconds,
            "jti": uuid.uuid4().hex,
            "scope": " ".join(granted),
            "client_kind": client.kind.value,
        }
        if client.channel:
            claims["channel"] = client.channel
        ring = self.keys.ring()
        header = {"alg": ring.signing_alg, "typ": "at+jwt", "kid": ring.signing.kid}
        token = jwt.encode(header, claims, ring.signing, algorithms=list(ALLOWED_ALGORITHMS))
        return token, self.lifetime_seconds


class TokenVerifier:
    """Checks signature by kid, typ, algorithm, iss, aud, exp/nbf and that the client is active."""

    def __init__(
        self,
        keys: SigningKeys,
        clients: ClientRegistry,
        clock: Clock,
        *,
        issuer: str,
        leeway_seconds: int = 10,
    ) -> None:
        self.keys = keys
        self.clients = clients
        self.clock = clock
        self.issuer = issuer
        self.leeway_seconds = leeway_seconds
        self._verified: OrderedDict[tuple[str, Layer], _Accepted] = OrderedDict()

    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    async def decode(self, token: str, layer: Layer) -> Principal:
        """Verify everything the token itself carries; raises TokenRejected.

        A token already accepted for this layer is looked up by its exact bytes: what it says
        cannot change, so only what time and key rotation can change is checked again (its key
        still published, `exp` and `nbf` against the clock). docs/decisions/0013.
        """
        remembered = self._verified.get((token, layer))
        if remembered is not None:
            ring = await self.keys.ring_async()
            now = self._now()
            if (
                remembered.kid in ring.kids
                and now <= remembered.expires_at + self.leeway_seconds
                and now >= remembered.not_before - self.leeway_seconds
            ):
                self._verified.move_to_end((token, layer))
                return remembered.principal
            del self._verified[(token, layer)]  # checked in full below, and refused there
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError) as exc:
            raise TokenRejected("malformed token") from exc
        if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
            raise TokenRejected("token type must be at+jwt")
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise TokenRejected(f"algorithm {header.get('alg')!r} is not accepted")
        kid = header.get("kid")
        ring = await self.keys.ring_async()
        if kid not in ring.kids:
            ring = await self.keys.ring_async(refresh=True)  # a key another replica just made
            if kid not in ring.kids:
                raise TokenRejected("unknown signing key")
        try:
            claims = jwt.decode(token, ring.published, algorithms=list(ALLOWED_ALGORITHMS)).claims
            JWTClaimsRegistry(
                now=self._now,
                leeway=self.leeway_seconds,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": audience(self.issuer, layer)},
                exp={"essential": True},
                iat={"essential": True},
                sub={"essential": True},
                client_id={"essential": True},
                jti={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError) as exc:
            raise TokenRejected(getattr(exc, "description", None) or str(exc)) from exc
        try:
            kind = ClientKind(claims.get("client_kind", ""))
        except ValueError as exc:
            raise TokenRejected("unknown client kind") from exc
        principal = Principal(
            client_id=str(claims["client_id"]),
            kind=kind,
            channel=claims.get("channel"),
            scopes=frozenset(str(claims.get("scope", "")).split()),
            token_id=str(claims["jti"]),
        )
        self._verified[(token, layer)] = _Accepted(
            principal=principal,
            kid=str(kid),
            expires_at=int(claims["exp"]),
            not_before=int(claims["nbf"] if "nbf" in claims else claims["iat"]),
        )
        if len(self._verified) > VERIFIED_SIGNATURES:
            self._verified.popitem(last=False)
        return principal

    async def verify(self, token: str, layer: Layer) -> Principal:
        principal = await self.decode(token, layer)
        record = await self.clients.active_record(principal.client_id)
        if record is None:
            raise TokenRejected("the client is disabled")
        if principal.throttle_tier == record.throttle_tier:
            return principal
        return replace(principal, throttle_tier=record.throttle_tier)
