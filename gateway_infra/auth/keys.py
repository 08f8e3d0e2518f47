"""Signing keys of access tokens: current, next and retired, rotated without breaking tokens.

The current key signs; the next one is already published so caches learn it before it signs;
retired keys stay published for a grace period so tokens they signed keep verifying. Private keys
are stored encrypted (SecretBox); every replica reads the same keys from the database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joserfc.jwk import ECKey, KeyParameters, KeySet, RSAKey
from sqlalchemy import Connection, delete, insert, select, update

from gateway_infra.auth.secret_box import SecretBox
from gateway_infra.tables import signing_keys
from gateway_infra.unit_of_work import Store, UnitOfWork

NEXT = "next"
CURRENT = "current"
RETIRED = "retired"
ALLOWED_ALGORITHMS = ("ES256", "RS256")

SigningKey = ECKey | RSAKey


@dataclass(frozen=True)
class KeyRing:
    """The keys as one replica sees them at one moment."""

    signing: SigningKey
    signing_alg: str
    published: KeySet
    kids: frozenset[str]


def _generate(alg: str) -> SigningKey:
    key: SigningKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256", auto_kid=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, auto_kid=True)
    else:
        raise ValueError(f"signing algorithm {alg!r} is not allowed")
    return key


class SigningKeys:
    """Creates, rotates and serves the token signing keys."""

    def __init__(
        self,
        store: Store,
        box: SecretBox,
        *,
        alg: str = "ES256",
        grace: timedelta = timedelta(hours=1),
        cache_seconds: float = 5.0,
    ) -> None:
        if alg not in ALLOWED_ALGORITHMS:
            raise ValueError(f"signing algorithm {alg!r} is not allowed")
        self.store = store
        self.box = box
        self.alg = alg
        self.grace = grace
        self.cache_seconds = cache_seconds
        self._ring: KeyRing | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    # -- administration ------------------------------------------------------------------

    def ensure(self) -> None:
        """Create the current and next keys if there are none (first start)."""
        self.store.write_sync(self._ensure)

    def _ensure(self, uow: UnitOfWork) -> None:
        states = set(uow.conn.execute(select(signing_keys.c.state)).scalars())
        if CURRENT not in states:
            self._insert(uow, CURRENT)
        if NEXT not in states:
            self._insert(uow, NEXT)

    def rotate(self) -> dict[str, str]:
        """Retire the current key, promote the next, create a new next; returns the kids."""

        def rotation(uow: UnitOfWork) -> dict[str, str]:
            self._ensure(uow)
            conn = uow.conn
            current = conn.execute(
                select(signing_keys.c.kid).where(signing_keys.c.state == CURRENT)
            ).scalar_one()
            promoted = conn.execute(
                select(signing_keys.c.kid).where(signing_keys.c.state == NEXT)
            ).scalar_one()
            conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == current)
                .values(state=RETIRED, retired_at=uow.now)
            )
            conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == promoted)
                .values(state=CURRENT, activated_at=uow.now)
            )
            created = self._insert(uow, NEXT)
            conn.execute(
                delete(signing_keys).where(
                    signing_keys.c.state == RETIRED,
                    signing_keys.c.retired_at < uow.now - self.grace,
                )
            )
            return {"retired": current, "current": promoted, "next": created}

        result = self.store.write_sync(rotation)
        self.invalidate()
        return result

    def _insert(self, uow: UnitOfWork, state: str) -> str:
        key = _generate(self.alg)
        kid = key.kid
        assert kid is not None
        pem = key.as_pem(private=True)
        uow.conn.execute(
            insert(signing_keys).values(
                kid=kid,
                alg=self.alg,
                state=state,
                private_key=self.box.encrypt(pem, purpose=f"signing-key:{kid}"),
                public_jwk={**key.as_dict(private=False), "use": "sig", "alg": self.alg},
                created_at=uow.now,
                activated_at=uow.now if state == CURRENT else None,
            )
        )
        return kid

    # -- runtime -------------------------------------------------------------------------

    def invalidate(self) -> None:
        with self._lock:
            self._ring = None

    def _cached(self, refresh: bool) -> KeyRing | None:
        with self._lock:
            age = time.monotonic() - self._loaded_at
            # Unknown kids may force a reload, but at most once a second (no reload storms).
            max_age = min(self.cache_seconds, 1.0) if refresh else self.cache_seconds
            return self._ring if self._ring is not None and age < max_age else None

    def _remember(self, ring: KeyRing) -> KeyRing:
        with self._lock:
            self._ring = ring
            self._loaded_at = time.monotonic()
        return ring

    def ring(self, *, refresh: bool = False) -> KeyRing:
        """The keys, read from the database at most every cache_seconds (or when refreshing).

        Blocks on the database when the cache is stale: for threads (the token endpoint's
        authlib server, the CLI). The event loop uses `ring_async`."""
        cached = self._cached(refresh)
        return cached or self._remember(self.store.database.run_read(self._load))

    async def ring_async(self, *, refresh: bool = False) -> KeyRing:
        """As `ring`, with the read, decryption and key import off the event loop."""
        cached = self._cached(refresh)
        return cached or self._remember(await self.store.read(self._load))

    def _load(self, conn: Connection) -> KeyRing:
        now = self.store.clock.now()
        rows = conn.execute(select(signing_keys)).all()
        published: list[dict[str, Any]] = []
        signing: SigningKey | None = None
        signing_alg = self.alg
        for row in rows:
            expired = row.retired_at is not None and row.retired_at + self.grace <= now
            if row.state == RETIRED and expired:
                continue
            published.append(dict(row.public_jwk))
            if row.state == CURRENT:
                pem = self.box.decrypt(row.private_key, purpose=f"signing-key:{row.kid}")
                parameters: KeyParameters = {"kid": row.kid, "use": "sig", "alg": row.alg}
                signing = (
                    ECKey.import_key(pem, parameters=parameters)
                    if row.alg == "ES256"
                    else RSAKey.import_key(pem, parameters=parameters)
                )
                signing_alg = row.alg
        if signing is None:
            raise RuntimeError("no current signing key: run `retail-gateway keys rotate`")
        key_set = KeySet.import_key_set({"keys": published})
        return KeyRing(
            signing=signing,
            signing_alg=signing_alg,
            published=key_set,
            kids=frozenset(str(k["kid"]) for k in published),
        )

    def jwks(self) -> dict[str, Any]:
        """The public JSON Web Key Set: current, next and retired keys still in their grace."""
        return dict(self.ring().published.as_dict(private=False))
