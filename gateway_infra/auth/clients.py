"""The registry of OAuth2 clients: marketplaces (partner) and internal applications.

Secrets are 256-bit random values shown once; only their SHA-256 digest is stored. A digest, not
a slow password hash: the secret has full entropy, and a slow hash would let anyone with a wrong
secret burn the token endpoint's CPU.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Connection, Row, insert, select, update

from gateway_infra.auth.scopes import Layer, layer_of
from gateway_infra.single_flight import SingleFlight
from gateway_infra.tables import oauth_clients
from gateway_infra.unit_of_work import Store, UnitOfWork

CHANNEL_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
CLIENT_ID_PATTERN = re.compile(r"[a-z]{2}_[0-9a-f]{20}")


class ClientKind(StrEnum):
    PARTNER = "partner"
    INTERNAL = "internal"


@dataclass(frozen=True)
class ClientRecord:
    """A registered client, without its secret."""

    client_id: str
    name: str
    kind: ClientKind
    channel: str | None
    scopes: frozenset[str]
    throttle_tier: str
    disabled_at: datetime | None
    created_at: datetime

    @property
    def active(self) -> bool:
        return self.disabled_at is None


class ClientError(ValueError):
    """A client registration that the rules do not allow."""


def secret_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def check_scopes(kind: ClientKind, scopes: Iterable[str]) -> frozenset[str]:
    """Partner clients get partner scopes only; internal clients process and system scopes."""
    wanted = frozenset(scopes)
    if not wanted:
        raise ClientError("a client needs at least one scope")
    for scope in wanted:
        try:
            layer = layer_of(scope)
        except ValueError as exc:
            raise ClientError(str(exc)) from exc
        if (kind is ClientKind.PARTNER) != (layer is Layer.PARTNER):
            raise ClientError(f"scope {scope!r} is not for {kind.value} clients")
    return wanted


class ClientRegistry:
    """Registers, authenticates and disables clients; tells whether one is still active."""

    def __init__(
        self,
        store: Store,
        *,
        status_cache_seconds: float = 1.0,
        known_tiers: Iterable[str] | None = None,
    ) -> None:
        self.store = store
        self.known_tiers = frozenset(known_tiers) if known_tiers is not None else None
        self.status_cache_seconds = status_cache_seconds
        self._status: dict[str, tuple[float, ClientRecord | None]] = {}
        self._status_lock = threading.Lock()
        self._loading: SingleFlight[str, ClientRecord | None] = SingleFlight()

    # -- administration (CLI) ------------------------------------------------------------

    def add(
        self,
        *,
        name: str,
        kind: ClientKind,
        scopes: Iterable[str],
        channel: str | None = None,
        throttle_tier: str = "standard",
    ) -> tuple[ClientRecord, str]:
        """Register a client; returns it with its secret, which is never shown again."""
        granted = check_scopes(kind, scopes)
        if kind is ClientKind.PARTNER and not channel:
            raise ClientError("a partner client belongs to a channel (--channel)")
        if channel is not None and not CHANNEL_PATTERN.fullmatch(channel):
            raise ClientError(
                f"channel {channel!r} must be lower case letters, digits, '_' or '-' (e.g. acme_de)"
            )
        if self.known_tiers is not None and throttle_tier not in self.known_tiers:
            raise ClientError(
                f"throttle tier {throttle_tier!r} is not configured "
                f"(known: {', '.join(sorted(self.known_tiers))})"
            )
        secret = new_secret()
        client_id = f"{'pc' if kind is ClientKind.PARTNER else 'ic'}_{secrets.token_hex(10)}"

        def register(uow: UnitOfWork) -> ClientRecord:
            uow.conn.execute(
                insert(oauth_clients).values(
                    client_id=client_id,
                    name=name,
                    kind=kind.value,
                    channel=channel,
                    scopes=" ".join(sorted(granted)),
                    throttle_tier=throttle_tier,
                    secret_digest=secret_digest(secret),
                    created_at=uow.now,
                    updated_at=uow.now,
                )
            )
            record = _load(uow.conn, client_id)
            assert record is not None
            return record

        return self.store.write_sync(register), secret

    def rotate_secret(self, client_id: str) -> str:
        """Give the client a new secret; the old one stops working at once."""
        secret = new_secret()
        self._set(client_id, secret_digest=secret_digest(secret))
        return secret

    def disable(self, client_id: str) -> None:
        """Stop the client: no new tokens, and its tokens fail within the status cache period."""
        self._set(client_id, disabled_at=self.store.clock.now())

    def enable(self, client_id: str) -> None:
        self._set(client_id, disabled_at=None)

    def _set(self, client_id: str, **values: object) -> None:
        def change(uow: UnitOfWork) -> int:
            result = uow.conn.execute(
                update(oauth_clients)
                .where(oauth_clients.c.client_id == client_id)
                .values(updated_at=uow.now, **values)
            )
            return result.rowcount

        if self.store.write_sync(change) != 1:
            raise ClientError(f"no client {client_id!r}")
        with self._status_lock:
            self._status.pop(client_id, None)

    def list(self) -> list[ClientRecord]:
        def query(conn: Connection) -> list[ClientRecord]:
            rows = conn.execute(select(oauth_clients).order_by(oauth_clients.c.created_at))
            return [_record(row) for row in rows]

        return self.store.database.run_read(query)

    # -- runtime (token endpoint, verification) ------------------------------------------

    def get(self, client_id: str) -> ClientRecord | None:
        if not CLIENT_ID_PATTERN.fullmatch(client_id):
            return None  # not an id this registry ever issued: no need to ask the database
        return self.store.database.run_read(lambda conn: _load(conn, client_id))

    def authenticate(self, client_id: str, secret: str) -> ClientRecord | None:
        """The active client whose secret this is, or None; constant time in the secret."""
        row = None
        if CLIENT_ID_PATTERN.fullmatch(client_id):
            row = self.store.database.run_read(
                lambda conn: conn.execute(
                    select(oauth_clients).where(oauth_clients.c.client_id == client_id)
                ).first()
            )
        presented = secret_digest(secret)
        if row is None:
            hmac.compare_digest(presented, presented)
            return None
        if not hmac.compare_digest(presented, row.secret_digest):
            return None
        record = _record(row)
        return record if record.active else None

    async def active_record(self, client_id: str) -> ClientRecord | None:
        """The client if it may still act; read from the database at most once per period."""
        now = self.store.clock.now().timestamp()
        with self._status_lock:
            cached = self._status.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        # Every request of a busy client finds the status expired at once: one read for them all.
        return await self._loading.run(client_id, lambda: self._load_status(client_id, now))

    async def _load_status(self, client_id: str, now: float) -> ClientRecord | None:
        record = None
        if CLIENT_ID_PATTERN.fullmatch(client_id):
            record = await self.store.read(lambda conn: _load(conn, client_id))
        active = record if record is not None and record.active else None
        with self._status_lock:
            self._status[client_id] = (now + self.status_cache_seconds, active)
        return active


def _load(conn: Connection, client_id: str) -> ClientRecord | None:
    row = conn.execute(select(oauth_clients).where(oauth_clients.c.client_id == client_id)).first()
    return None if row is None else _record(row)


def _record(row: Row[object]) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        kind=ClientKind(row.kind),
        channel=row.channel,
        scopes=frozenset(row.scopes.split()),
        throttle_tier=row.throttle_tier,
        disabled_at=row.disabled_at,
        created_at=row.created_at,
    )
