"""Operators of the ops console: accounts, password check, and server-side sessions.

Passwords are hashed with argon2id (argon2-cffi); only the hash is stored. A session is a random
token in the operator's cookie; the database keeps its SHA-256 digest, its CSRF token and its
expiry, so signing out or disabling the operator ends it at once, on every worker."""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import JsonValue
from sqlalchemy import Connection, RowMapping, delete, insert, select, update

from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api import audit
from process_api.tables import operator_sessions, operators

USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024


def default_hasher() -> PasswordHasher:
    """argon2id with 19 MiB, 2 passes, 1 lane: the first configuration OWASP's password
    storage cheat sheet recommends; about 25 ms a hash here. Hashes made with other parameters
    still verify (the parameters are part of the stored hash)."""
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


class OperatorError(ValueError):
    """An operator command that cannot be carried out (message says why)."""


@dataclass(frozen=True)
class Operator:
    operator_id: str
    username: str
    display_name: str
    active: bool
    created_at: datetime
    disabled_at: datetime | None

    @property
    def actor(self) -> str:
        """How the audit log and the histories name this operator."""
        return f"operator:{self.username}"


@dataclass(frozen=True)
class Session:
    operator: Operator
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class SignedIn:
    token: str
    """The cookie value; shown once, stored only as its digest."""
    session: Session


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _operator(row: RowMapping) -> Operator:
    return Operator(
        operator_id=row["operator_id"],
        username=row["username"],
        display_name=row["display_name"],
        active=bool(row["active"]),
        created_at=row["created_at"],
        disabled_at=row["disabled_at"],
    )


def _public(operator: Operator) -> dict[str, JsonValue]:
    return {
        "username": operator.username,
        "display_name": operator.display_name,
        "active": operator.active,
        "disabled_at": operator.disabled_at.isoformat() if operator.disabled_at else None,
    }


class Operators:
    """Operator accounts and their sessions."""

    def __init__(
        self,
        store: Store,
        *,
        session_lifetime: timedelta = timedelta(hours=8),
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.store = store
        self.session_lifetime = session_lifetime
        self.hasher = hasher or default_hasher()
        # Keys the hash that stands for an unknown username in the audit log; never stored.
        self._unknown_key = secrets.token_bytes(32)

    @functools.cached_property
    def _decoy(self) -> str:
        """Checked when the username is unknown, so both answers take the same time."""
        return self.hasher.hash(secrets.token_urlsafe(16))

    # ------------------------------------------------------------ accounts (command line)

    def add_sync(
        self, username: str, password: str, *, display_name: str | None = None, actor: str
    ) -> Operator:
        if not USERNAME.match(username):
            raise OperatorError(
                "username: 2 to 64 lower-case letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise OperatorError(f"password: at least {MIN_PASSWORD_LENGTH} characters")
        password_hash = self.hasher.hash(password)

        def unit(uow: UnitOfWork) -> Operator:
            found = uow.conn.execute(
                select(operators.c.operator_id).where(operators.c.username == username)
            ).first()
            if found is not None:
                raise OperatorError(f"operator {username!r} exists already")
            values = {
                "operator_id": "op_" + secrets.token_hex(8),
                "username": username,
                "display_name": (display_name or username)[:200],
                "password_hash": password_hash,
                "active": True,
                "created_at": uow.now,
                "disabled_at": None,
            }
            uow.conn.execute(insert(operators).values(**values))
            created = _operator(values)  # type: ignore[arg-type]
            audit.record(
                uow,
                actor=actor,
                action="operator.added",
                subject=f"operator/{username}",
                after=_public(created),
            )
            return created

        return self.store.write_sync(unit)

    def list_sync(self) -> list[Operator]:
        def read(conn: Connection) -> list[Operator]:
            rows = conn.execute(select(operators).order_by(operators.c.username)).mappings()
            return [_operator(row) for row in rows]

        return self.store.database.run_read(read)

    def disable_sync(self, username: str, *, actor: str) -> Operator:
        """Stop the operator from signing in; ends their sessions at once."""

        def unit(uow: UnitOfWork) -> Operator:
            row = (
                uow.conn.execute(select(operators).where(operators.c.username == username))
                .mappings()
                .first()
            )
            if row is None:
                raise OperatorError(f"no operator {username!r}")
            before = _operator(row)
            if not before.active:
                return before
            uow.conn.execute(
                update(operators)
                .where(operators.c.operator_id == before.operator_id)
                .values(active=False, disabled_at=uow.now)
            )
            uow.conn.execute(
                delete(operator_sessions).where(
                    operator_sessions.c.operator_id == before.operator_id
                )
            )
            after = Operator(**{**before.__dict__, "active": False, "disabled_at": uow.now})
            audit.record(
                uow,
                actor=actor,
                action="operator.disabled",
                subject=f"operator/{username}",
                before=_public(before),
                after=_public(after),
            )
            return after

        return self.store.write_sync(unit)

    # ------------------------------------------------------------ signing in and out

    def _unknown(self, username: str) -> str:
        return hmac.new(self._unknown_key, username.encode(), hashlib.sha256).hexdigest()[:12]

    async def sign_in(self, username: str, password: str) -> SignedIn | None:
        """A new session when the password is right and the operator active; None otherwise.
        Both outcomes are recorded in the audit log."""
        row = await self.store.read(
            lambda conn: (
                conn.execute(select(operators).where(operators.c.username == username))
                .mappings()
                .first()
            )
        )
        stored_hash = row["password_hash"] if row is not None else self._decoy
        good = await anyio.to_thread.run_sync(self._verify, stored_hash, password)
        operator = _operator(row) if row is not None else None
        if operator is None or not operator.active or not good:
            # An unknown username may be a password typed in the wrong field: the audit log
            # gets a short keyed hash of it, the same for the same name while this process
            # runs, so repeated tries show without the text.
            if operator is not None:
                actor, subject = f"operator:{username}", f"operator/{username}"
            else:
                actor, subject = (
                    "operator:(unknown)",
                    f"operator/(unknown):{self._unknown(username)}",
                )
            await self.store.write(
                lambda uow: audit.record(
                    uow,
                    actor=actor,
                    action="operator.sign_in_refused",
                    subject=subject,
                    after={"reason": "disabled" if good and operator else "wrong credentials"},
                )
            )
            return None
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)

        def unit(uow: UnitOfWork) -> Session:
            expires_at = uow.now + self.session_lifetime
            # Expired sessions (anyone's) go as a new one starts: the table stays small.
            uow.conn.execute(
                delete(operator_sessions).where(operator_sessions.c.expires_at <= uow.now)
            )
            uow.conn.execute(
                insert(operator_sessions).values(
                    session_digest=_digest(token),
                    operator_id=operator.operator_id,
                    csrf_token=csrf,
                    created_at=uow.now,
                    expires_at=expires_at,
                )
            )
            audit.record(
                uow,
                actor=operator.actor,
                action="operator.signed_in",
                subject=f"operator/{operator.username}",
                after={"expires_at": expires_at.isoformat()},
            )
            return Session(operator, csrf, expires_at)

        session = await self.store.write(unit)
        return SignedIn(token, session)

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def session(self, token: str | None) -> Session | None:
        """The live session of a cookie value: unexpired, its operator still active."""
        if not token or len(token) > 200:
            return None
        now = self.store.clock.now()

        def read(conn: Connection) -> Session | None:
            row = (
                conn.execute(
                    select(
                        operators,
                        operator_sessions.c.csrf_token,
                        operator_sessions.c.expires_at,
                    )
                    .select_from(operator_sessions)
                    .join(operators, operators.c.operator_id == operator_sessions.c.operator_id)
                    .where(operator_sessions.c.session_digest == _digest(token))
                )
                .mappings()
                .first()
            )
            if row is None or row["expires_at"] <= now or not row["active"]:
                return None
            return Session(_operator(row), row["csrf_token"], row["expires_at"])

        return await self.store.read(read)

    async def sign_out(self, token: str, operator: Operator) -> None:
        def unit(uow: UnitOfWork) -> None:
            uow.conn.execute(
                delete(operator_sessions).where(
                    operator_sessions.c.session_digest == _digest(token)
                )
            )
            audit.record(
                uow,
                actor=operator.actor,
                action="operator.signed_out",
                subject=f"operator/{operator.username}",
            )

        await self.store.write(unit)
