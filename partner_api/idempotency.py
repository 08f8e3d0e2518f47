"""Idempotency-Key support of the partner edge (draft-ietf-httpapi-idempotency-key-header).

A partner sends `Idempotency-Key: "<key>"` with an unsafe request. The first request with a key
leases it (state in_flight) and, once answered, stores the answer (state completed) for the
retention period; a retry with the same key and the same request gets the stored answer again
(header Idempotent-Replayed: true). The same key with another request is refused (422), a retry
while the first is still running is refused (409, Retry-After), and a request whose lease ran out
(its process crashed) may be taken over by a retry. Server errors (5xx) are never stored: the
key is released so that a retry runs the request again. Keys are scoped per client.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import anyio
from sqlalchemy import Row, and_, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from starlette.responses import Response

from gateway_infra.metrics import IDEMPOTENT_REPLAYS
from gateway_infra.problems import ProblemError, ProblemType, problem_response
from gateway_infra.unit_of_work import Store, UnitOfWork
from partner_api.tables import idempotency_keys

log = logging.getLogger("gateway.partner.idempotency")

T = TypeVar("T")

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255

IN_FLIGHT = "in_flight"
COMPLETED = "completed"

# Response headers worth replaying; the rest (RateLimit-*, X-Correlation-ID, ...) are per request.
REPLAYED_RESPONSE_HEADERS = frozenset({"content-type", "location"})

IDEMPOTENCY_KEY_MISSING = ProblemType(
    "idempotency-key-missing", "This request needs an Idempotency-Key header", 400
)
IDEMPOTENCY_KEY_INVALID = ProblemType(
    "idempotency-key-invalid", "The Idempotency-Key header is malformed", 400
)
IDEMPOTENCY_KEY_REUSED = ProblemType(
    "idempotency-key-reused", "This Idempotency-Key was used with a different request", 422
)
IDEMPOTENCY_KEY_IN_FLIGHT = ProblemType(
    "idempotency-key-in-flight",
    "A request with this Idempotency-Key is still being processed",
    409,
)
IN_FLIGHT_RETRY_AFTER_SECONDS = 1


# ---------------------------------------------------------------- the header and the request


def _is_sf_string_char(ch: str) -> bool:
    """RFC 8941 sf-string `unescaped`: %x20-21 / %x23-5B / %x5D-7E."""
    code = ord(ch)
    return 0x20 <= code <= 0x7E and ch not in ('"', "\\")


def _is_bare_key_char(ch: str) -> bool:
    """Visible ASCII except the delimiters of structured fields: DQUOTE, comma, backslash, ';'."""
    code = ord(ch)
    return 0x21 <= code <= 0x7E and ch not in ('"', ",", "\\", ";")


def _invalid(detail: str) -> ProblemError:
    return ProblemError(IDEMPOTENCY_KEY_INVALID, detail)


def _unquote_sf_string(value: str) -> str:
    """The content of an RFC 8941 sf-string (value starts with DQUOTE); else KEY_INVALID."""
    chars: list[str] = []
    i = 1
    while i < len(value):
        ch = value[i]
        if ch == "\\":
            if i + 1 >= len(value) or value[i + 1] not in ('"', "\\"):
                raise _invalid('Only \\" and \\\\ may be escaped in a quoted Idempotency-Key.')
            chars.append(value[i + 1])
            i += 2
        elif ch == '"':
            if i != len(value) - 1:
                raise _invalid("Nothing may follow the closing quote of the Idempotency-Key.")
            return "".join(chars)
        elif _is_sf_string_char(ch):
            chars.append(ch)
            i += 1
        else:
            raise _invalid("An Idempotency-Key holds printable ASCII characters only.")
    raise _invalid("The quoted Idempotency-Key has no closing quote.")


def parse_idempotency_key(value: str | None) -> str:
    """The key of an Idempotency-Key header: a structured-field string ("abc") or a bare token.

    Raises ProblemError IDEMPOTENCY_KEY_MISSING when the header is absent or empty, and
    IDEMPOTENCY_KEY_INVALID when it is malformed or its key is not 1 to 255 characters long.
    """
    if value is None:
        raise ProblemError(IDEMPOTENCY_KEY_MISSING)
    value = value.strip(" \t")
    if not value:
        raise ProblemError(IDEMPOTENCY_KEY_MISSING)
    if value.startswith('"'):
        key = _unquote_sf_string(value)
    elif all(_is_bare_key_char(ch) for ch in value):
        key = value
    else:
        raise _invalid(
            'An Idempotency-Key is a quoted string ("abc-123") or a token without spaces, '
            "quotes or commas."
        )
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise _invalid(f"An Idempotency-Key has 1 to {MAX_KEY_LENGTH} characters.")
    return key


def _canonical_body(body: bytes) -> bytes:
    """A JSON body with sorted keys and no whitespace; any other body as it is."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return body
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """SHA-256 (hex) of the method, the path and the body (JSON canonicalised)."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode())
    digest.update(b"\n")
    digest.update(path.encode())
    digest.update(b"\n")
    digest.update(_canonical_body(body))
    return digest.hexdigest()


# ---------------------------------------------------------------- the records


@dataclass(frozen=True)
class StoredResponse:
    """The answer stored for a key, replayed to every retry with the same request."""

    status_code: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # What the record says about itself (not part of the answer): the request it answers, and
    # until when it is kept.
    fingerprint: str | None = field(default=None, compare=False)
    expires_at: datetime | None = field(default=None, compare=False)


def _in_flight_error() -> ProblemError:
    return ProblemError(
        IDEMPOTENCY_KEY_IN_FLIGHT,
        "Retry this request once the first one has been answered.",
        headers={"Retry-After": str(IN_FLIGHT_RETRY_AFTER_SECONDS)},
    )


def _reused_error() -> ProblemError:
    return ProblemError(
        IDEMPOTENCY_KEY_REUSED,
        "Use a new Idempotency-Key for a new request; reuse a key only to retry the same request.",
    )


def _stored_response(row: Row[Any]) -> StoredResponse:
    headers = row.response_headers or {}
    return StoredResponse(
        status_code=int(row.status_code),
        headers={str(k): str(v) for k, v in dict(headers).items()},
        body=bytes(row.response_body or b""),
        fingerprint=row.fingerprint,
        expires_at=row.expires_at,
    )


REMEMBERED_ANSWERS = 10_000
"""Completed records replayed recently, kept in this process (least recently used go first)."""


# The statements of one request, built once with their values as parameters: building them anew
# (and computing their cache keys) cost several times more than running them.
_t = idempotency_keys
_THIS_KEY = and_(_t.c.client_id == bindparam("b_client_id"), _t.c.key == bindparam("b_key"))
_FIND = select(_t).where(_THIS_KEY)
_FIND_FOR_UPDATE = _FIND.with_for_update()
_INSERT = insert(_t)
_UPDATE = update(_t).where(_THIS_KEY)
_IN_FLIGHT = and_(_THIS_KEY, _t.c.state == IN_FLIGHT)
_HELD_BY = and_(_IN_FLIGHT, _t.c.lease_token == bindparam("b_lease_token"))
_UPDATE_HOLDER = {False: update(_t).where(_IN_FLIGHT), True: update(_t).where(_HELD_BY)}
_DELETE_HOLDER = {False: delete(_t).where(_IN_FLIGHT), True: delete(_t).where(_HELD_BY)}


def _holder_params(client_id: str, key: str, lease_token: str | None) -> dict[str, Any]:
    """The in-flight record of this key, held by lease_token when one is given."""
    params: dict[str, Any] = {"b_client_id": client_id, "b_key": key}
    if lease_token is not None:
        params["b_lease_token"] = lease_token
    return params


class IdempotencyStore:
    """Idempotency records of partner requests, one per (client_id, key)."""

    def __init__(self, store: Store, *, retention: timedelta, lease: timedelta) -> None:
        if retention <= timedelta(0) or lease <= timedelta(0):
            raise ValueError("retention and lease must be positive")
        self.store = store
        self.retention = retention
        self.lease = lease
        # A completed record never changes until it expires (then the key is new again): its
        # replays are answered from here, without a write transaction each (decision 0016).
        self._completed: OrderedDict[tuple[str, str], StoredResponse] = OrderedDict()

    def _remembered(self, client_id: str, key: str, fingerprint: str) -> StoredResponse | None:
        stored = self._completed.get((client_id, key))
        if stored is None:
            return None
        if stored.expires_at is None or stored.expires_at <= self.store.clock.now():
            del self._completed[(client_id, key)]
            return None
        if stored.fingerprint != fingerprint:
            raise _reused_error()
        self._completed.move_to_end((client_id, key))
        return stored

    def _remember(self, client_id: str, key: str, stored: StoredResponse) -> None:
        self._completed[(client_id, key)] = stored
        if len(self._completed) > REMEMBERED_ANSWERS:
            self._completed.popitem(last=False)

    async def begin(
        self, client_id: str, key: str, fingerprint: str, *, lease_token: str | None = None
    ) -> StoredResponse | None:
        """Lease the key (None: go ahead), or the stored answer to replay.

        The lease carries `lease_token`: `complete` and `release` given the same token act only
        while this request still holds the lease, never on a later request that took it over.

        Raises ProblemError IDEMPOTENCY_KEY_REUSED when the key was used for another request and
        IDEMPOTENCY_KEY_IN_FLIGHT when a request with it is still running.
        """

        remembered = self._remembered(client_id, key, fingerprint)
        if remembered is not None:
            return remembered

        def decide(uow: UnitOfWork) -> StoredResponse | None:
            return self._decide(uow, client_id, key, fingerprint, lease_token)

        try:
            stored = await self.store.write(decide)
        except IntegrityError:
            # A concurrent first request inserted the key: decide again, seeing its record.
            try:
                stored = await self.store.write(decide)
            except IntegrityError:
                # Raced twice: another request is inserting this very key right now.
                raise _in_flight_error() from None
        if stored is not None:
            self._remember(client_id, key, stored)
        return stored

    def _decide(
        self,
        uow: UnitOfWork,
        client_id: str,
        key: str,
        fingerprint: str,
        lease_token: str | None,
    ) -> StoredResponse | None:
        conn = uow.conn
        this_key = {"b_client_id": client_id, "b_key": key}
        # SQLite's BEGIN IMMEDIATE already serialises us; PostgreSQL locks the row.
        query = _FIND if conn.dialect.name == "sqlite" else _FIND_FOR_UPDATE
        row = conn.execute(query, this_key).one_or_none()
        now = uow.now
        leased = {
            "fingerprint": fingerprint,
            "state": IN_FLIGHT,
            "lease_until": now + self.lease,
            "lease_token": lease_token,
            "status_code": None,
            "response_headers": None,
            "response_body": None,
            "created_at": now,
            "completed_at": None,
            "expires_at": now + self.retention,
        }
        if row is None:
            conn.execute(_INSERT, {"client_id": client_id, "key": key, **leased})
            return None
        if row.expires_at <= now:  # forgotten: the key is new again
            conn.execute(_UPDATE, {**this_key, **leased})
            return None
        if row.fingerprint != fingerprint:
            raise _reused_error()
        if row.state == COMPLETED:
            return _stored_response(row)
        lease_until: datetime | None = row.lease_until
        if lease_until is not None and lease_until > now:
            raise _in_flight_error()
        # The request that held the lease never finished (crashed or lost): take it over.
        conn.execute(
            _UPDATE,
            {
                **this_key,
                "lease_until": now + self.lease,
                "lease_token": lease_token,
                "expires_at": now + self.retention,
            },
        )
        return None

    async def complete(
        self,
        client_id: str,
        key: str,
        status_code: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        lease_token: str | None = None,
    ) -> None:
        """Store the answer for replay; a server error (5xx) is never stored: the key is freed."""
        if status_code >= 500:
            await self.release(client_id, key, lease_token=lease_token)
            return
        stored_headers = dict(headers)
        stored_body = bytes(body)

        def store(uow: UnitOfWork) -> None:
            self.complete_in(
                uow, client_id, key, status_code, stored_headers, stored_body, lease_token
            )

        await self.store.write(store)

    def complete_in(
        self,
        uow: UnitOfWork,
        client_id: str,
        key: str,
        status_code: int,
        headers: Mapping[str, str],
        body: bytes,
        lease_token: str | None = None,
    ) -> None:
        """complete() inside the caller's unit of work, for an answer below 500: the answer
        commits (or rolls back) with the work it answers."""
        if status_code >= 500:
            raise ValueError("a server error is never stored for replay")
        uow.conn.execute(
            _UPDATE_HOLDER[lease_token is not None],
            {
                **_holder_params(client_id, key, lease_token),
                "state": COMPLETED,
                "lease_until": None,
                "status_code": status_code,
                "response_headers": dict(headers),
                "response_body": bytes(body),
                "completed_at": uow.now,
                "expires_at": uow.now + self.retention,
            },
        )

    async def release(self, client_id: str, key: str, *, lease_token: str | None = None) -> None:
        """Forget an in-flight key, so that a retry runs the request again."""

        def forget(uow: UnitOfWork) -> None:
            uow.conn.execute(
                _DELETE_HOLDER[lease_token is not None], _holder_params(client_id, key, lease_token)
            )

        await self.store.write(forget)

    async def purge(self, limit: int = 10_000) -> int:
        """Delete up to limit records whose retention has passed; the number deleted."""
        if limit < 1:
            return 0

        def purge_batch(uow: UnitOfWork) -> int:
            t = idempotency_keys
            expired = select(t.c.client_id, t.c.key).where(t.c.expires_at <= uow.now).limit(limit)
            # One statement with the batch as a subquery: a list of 10,000 (client, key) pairs
            # as parameters exceeded PostgreSQL's stack depth and the purge never succeeded.
            deleted = uow.conn.execute(
                delete(t).where(
                    tuple_(t.c.client_id, t.c.key).in_(expired), t.c.expires_at <= uow.now
                )
            )
            return int(deleted.rowcount)

        return await self.store.write(purge_batch)


# ---------------------------------------------------------------- one request


def _problem_answer(exc: ProblemError) -> Response:
    return problem_response(exc.problem, exc.detail, headers=exc.headers, **exc.extensions)


def _answer_of(respond: Callable[[], Response]) -> Response:
    """respond()'s answer; a ProblemError becomes its problem+json answer."""
    try:
        return respond()
    except ProblemError as exc:
        return _problem_answer(exc)


async def _answer_of_async(produce: Callable[[], Awaitable[Response]]) -> Response:
    """produce()'s answer; a ProblemError becomes its problem+json answer."""
    try:
        return await produce()
    except ProblemError as exc:
        return _problem_answer(exc)


def replayable_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The response headers stored for replay: content-type and location."""
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() in REPLAYED_RESPONSE_HEADERS
    }


class IdempotentRequest:
    """One partner request carrying an Idempotency-Key: run once, answered the same every time."""

    def __init__(self, store: IdempotencyStore, client_id: str, key: str, fingerprint: str) -> None:
        self.store = store
        self.client_id = client_id
        self.key = key
        self.fingerprint = fingerprint
        self.lease_token = secrets.token_hex(16)
        self.answered: Response | None = None
        """The answer stored with the work it answers (see answering), once that committed."""

    def answering(self, respond: Callable[[T], Response]) -> Callable[[UnitOfWork, T], None]:
        """A writer for the unit of work that settles this request: it makes the answer from
        that work's result (a ProblemError becomes its problem answer) and stores it for replay
        in the same transaction, so that the answer commits with the work and needs no
        transaction of its own. Once that transaction has committed, `answered` holds the
        answer; produce returns it, and run stores nothing more. A server error is not
        stored there (run releases the key as for any other)."""

        def write(uow: UnitOfWork, result: T) -> None:
            response = _answer_of(lambda: respond(result))
            body = getattr(response, "body", None)
            if response.status_code >= 500 or not isinstance(body, bytes | memoryview):
                return
            self.store.complete_in(
                uow,
                self.client_id,
                self.key,
                response.status_code,
                replayable_headers(response.headers),
                bytes(body),
                self.lease_token,
            )

            def committed() -> None:
                self.answered = response

            uow.on_commit(committed)

        return write

    async def run(self, produce: Callable[[], Awaitable[Response]]) -> Response:
        """The stored answer of an earlier identical request, or produce()'s answer, stored.

        A ProblemError of produce becomes its problem+json answer (stored like any other answer
        below 500); any other exception, or cancellation, releases the key and propagates.
        Raises ProblemError IDEMPOTENCY_KEY_REUSED / IDEMPOTENCY_KEY_IN_FLIGHT from begin.
        """
        stored = await self.store.begin(
            self.client_id, self.key, self.fingerprint, lease_token=self.lease_token
        )
        if stored is not None:
            IDEMPOTENT_REPLAYS.labels(self.client_id).inc()
            return Response(
                content=stored.body,
                status_code=stored.status_code,
                headers={**stored.headers, REPLAYED_HEADER: "true"},
            )
        try:
            response = await _answer_of_async(produce)
        except BaseException:
            await self._release_quietly()
            raise
        if response is self.answered:
            return response  # stored with the work it answers
        body = getattr(response, "body", None)
        if not isinstance(body, bytes | memoryview):
            # A streamed answer cannot be stored; let a retry run the request again.
            await self._release_quietly()
            return response
        try:
            with anyio.CancelScope(shield=True):
                await self.store.complete(
                    self.client_id,
                    self.key,
                    response.status_code,
                    replayable_headers(response.headers),
                    bytes(body),
                    lease_token=self.lease_token,
                )
        except Exception:
            # The request did happen: answer it. The key stays leased until its lease runs out.
            log.exception("could not store the answer of Idempotency-Key %r", self.key)
        return response

    async def _release_quietly(self) -> None:
        """Release the key, shielded from cancellation; a failure is logged, never raised."""
        try:
            with anyio.CancelScope(shield=True):
                await self.store.release(self.client_id, self.key, lease_token=self.lease_token)
        except Exception:
            # The key stays leased until its lease runs out; a retry may take it over then.
            log.exception("could not release Idempotency-Key %r", self.key)


__all__ = [
    "IDEMPOTENCY_KEY_HEADER",
    "IDEMPOTENCY_KEY_INVALID",
    "IDEMPOTENCY_KEY_IN_FLIGHT",
    "IDEMPOTENCY_KEY_MISSING",
    "IDEMPOTENCY_KEY_REUSED",
    "REPLAYED_HEADER",
    "IdempotencyStore",
    "IdempotentRequest",
    "StoredResponse",
    "parse_idempotency_key",
    "replayable_headers",
    "request_fingerprint",
]
