"""Idempotency-Key at the partner edge: a retried request is answered once, the same every time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import anyio
import pytest
from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from starlette.responses import JSONResponse, Response

from gateway_infra.clock import ManualClock
from gateway_infra.database import Database
from gateway_infra.problems import BACKEND_UNAVAILABLE, CONFLICT, ProblemError, ProblemType
from gateway_infra.unit_of_work import Store, UnitOfWork
from partner_api.idempotency import (
    IDEMPOTENCY_KEY_IN_FLIGHT,
    IDEMPOTENCY_KEY_INVALID,
    IDEMPOTENCY_KEY_MISSING,
    IDEMPOTENCY_KEY_REUSED,
    IdempotencyStore,
    IdempotentRequest,
    StoredResponse,
    parse_idempotency_key,
    request_fingerprint,
)
from partner_api.tables import idempotency_keys

T = TypeVar("T")

RETENTION = timedelta(hours=24)
LEASE = timedelta(seconds=30)
CLIENT = "marketplace-a"
FP = request_fingerprint("POST", "/partner/v1/orders", b'{"channel_order_id":"A-1"}')
OTHER_FP = request_fingerprint("POST", "/partner/v1/orders", b'{"channel_order_id":"A-2"}')
ORDER_REJECTED = ProblemType("order-rejected", "The order was rejected", 409)


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def store(database: Database, clock: ManualClock) -> Store:
    return Store(database, clock)


@pytest.fixture
def idempotency(store: Store) -> IdempotencyStore:
    return IdempotencyStore(store, retention=RETENTION, lease=LEASE)


def problem_of(exc_info: pytest.ExceptionInfo[ProblemError]) -> ProblemType:
    return exc_info.value.problem


async def record(store: Store, key: str, client_id: str = CLIENT) -> dict[str, Any] | None:
    def load(conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(
            select(idempotency_keys).where(
                idempotency_keys.c.client_id == client_id, idempotency_keys.c.key == key
            )
        ).one_or_none()
        return None if row is None else dict(row._mapping)

    return await store.read(load)


async def count_records(store: Store) -> int:
    def count(conn: Connection) -> int:
        return len(conn.execute(select(idempotency_keys.c.key)).all())

    return await store.read(count)


# ---------------------------------------------------------------- parse_idempotency_key


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ('"abc-123"', "abc-123"),
        ("abc-123", "abc-123"),
        ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
        ('"with space"', "with space"),
        ('  "padded"  ', "padded"),
        ("\tbare\t", "bare"),
        ("a:b/c*d_e.f~g", "a:b/c*d_e.f~g"),
    ],
)
def test_quoted_and_bare_keys_are_accepted(header: str, key: str) -> None:
    assert parse_idempotency_key(header) == key


@pytest.mark.parametrize(
    ("header", "key"),
    [
        (r'"say \"hi\""', 'say "hi"'),
        (r'"back\\slash"', "back\\slash"),
        (r'"\\\""', '\\"'),
    ],
)
def test_escaped_quote_and_backslash_are_unescaped(header: str, key: str) -> None:
    assert parse_idempotency_key(header) == key


def test_key_of_255_characters_is_accepted_quoted_or_bare() -> None:
    key = "k" * 255
    assert parse_idempotency_key(key) == key
    assert parse_idempotency_key(f'"{key}"') == key


def test_limit_counts_characters_after_unquoting() -> None:
    key = '"' * 255
    header = '"' + r"\"" * 255 + '"'
    assert parse_idempotency_key(header) == key


@pytest.mark.parametrize("key", ["k" * 256, '"' + "k" * 256 + '"'])
def test_key_of_256_characters_is_refused(key: str) -> None:
    with pytest.raises(ProblemError) as exc_info:
        parse_idempotency_key(key)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_INVALID


@pytest.mark.parametrize("header", [None, "", "   ", "\t"])
def test_absent_or_empty_header_is_refused_as_missing(header: str | None) -> None:
    with pytest.raises(ProblemError) as exc_info:
        parse_idempotency_key(header)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_MISSING
    assert problem_of(exc_info).status == 400
    assert problem_of(exc_info).code == "idempotency-key-missing"


@pytest.mark.parametrize(
    "header",
    [
        "abc def",  # space in a bare key
        "a,b",  # a list, not one key
        '"a","b"',
        'ab"c',  # quote inside a bare key
        '"abc',  # unterminated string
        '"a"b',  # something after the closing quote
        '"a";p=1',  # parameters
        r'"a\x"',  # only \" and \\ may be escaped
        '"a\\',  # dangling backslash
        '""',  # an empty key
        '"caf\u00e9"',  # not ASCII
        "caf\u00e9",
        '"tab\there"',  # control character in a string
        "a\\b",  # backslash in a bare key
    ],
)
def test_malformed_key_is_refused_as_invalid(header: str) -> None:
    with pytest.raises(ProblemError) as exc_info:
        parse_idempotency_key(header)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_INVALID
    assert problem_of(exc_info).status == 400
    assert problem_of(exc_info).code == "idempotency-key-invalid"


# ---------------------------------------------------------------- request_fingerprint


def test_fingerprint_ignores_json_key_order_and_whitespace() -> None:
    compact = b'{"a":1,"b":{"x":[1,2],"y":"z"}}'
    spaced = b'{\n  "b": {"y": "z", "x": [1, 2]},\n  "a": 1\n}\n'
    assert request_fingerprint("POST", "/orders", compact) == request_fingerprint(
        "POST", "/orders", spaced
    )


def test_fingerprint_is_sha256_hex() -> None:
    fingerprint = request_fingerprint("POST", "/orders", b"{}")
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0


def test_fingerprint_differs_for_another_path_method_or_body() -> None:
    base = request_fingerprint("POST", "/orders", b'{"a":1}')
    assert request_fingerprint("POST", "/returns", b'{"a":1}') != base
    assert request_fingerprint("PUT", "/orders", b'{"a":1}') != base
    assert request_fingerprint("POST", "/orders", b'{"a":2}') != base
    assert request_fingerprint("POST", "/orders", b'{"a":"1"}') != base


def test_non_json_body_is_hashed_as_is() -> None:
    assert request_fingerprint("POST", "/f", b"a=1&b=2") != request_fingerprint(
        "POST", "/f", b"b=2&a=1"
    )
    assert request_fingerprint("POST", "/f", b"a=1&b=2") == request_fingerprint(
        "POST", "/f", b"a=1&b=2"
    )
    assert request_fingerprint("POST", "/f", b"\xff\xfe") != request_fingerprint(
        "POST", "/f", b"\xff"
    )


def test_path_and_body_cannot_be_shifted_into_each_other() -> None:
    assert request_fingerprint("POST", "/a", b"b") != request_fingerprint("POST", "/ab", b"")


# ---------------------------------------------------------------- IdempotencyStore


async def test_first_begin_proceeds_and_leases_the_key(
    idempotency: IdempotencyStore, store: Store, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    row = await record(store, "k1")
    assert row is not None
    assert row["state"] == "in_flight"
    assert row["fingerprint"] == FP
    assert row["lease_until"] == clock.now() + LEASE
    assert row["expires_at"] == clock.now() + RETENTION
    assert row["created_at"] == clock.now()


async def test_replay_after_complete_returns_same_status_headers_and_body(
    idempotency: IdempotencyStore, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    headers = {"content-type": "application/json", "location": "/partner/v1/orders/o-1"}
    body = b'{"order_id":"o-1","status":"accepted"}'
    await idempotency.complete(CLIENT, "k1", 201, headers, body)
    clock.advance(timedelta(hours=1))

    replayed = await idempotency.begin(CLIENT, "k1", FP)
    assert replayed == StoredResponse(status_code=201, headers=headers, body=body)
    assert await idempotency.begin(CLIENT, "k1", FP) == replayed


async def test_same_key_with_different_payload_is_refused_with_422(
    idempotency: IdempotencyStore,
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "k1", OTHER_FP)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_REUSED
    assert problem_of(exc_info).status == 422
    assert problem_of(exc_info).title == "This Idempotency-Key was used with a different request"

    await idempotency.complete(CLIENT, "k1", 201, {}, b"{}")
    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "k1", OTHER_FP)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_REUSED


async def test_retry_while_in_flight_is_refused_with_409_and_retry_after(
    idempotency: IdempotencyStore, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    clock.advance(LEASE - timedelta(seconds=1))
    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "k1", FP)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_IN_FLIGHT
    assert problem_of(exc_info).status == 409
    assert problem_of(exc_info).code == "idempotency-key-in-flight"
    assert exc_info.value.headers["Retry-After"] == "1"


async def test_retry_after_lease_expiry_takes_the_key_over(
    idempotency: IdempotencyStore, store: Store, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None  # this request then crashes
    clock.advance(LEASE)
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    row = await record(store, "k1")
    assert row is not None
    assert row["lease_until"] == clock.now() + LEASE

    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "k1", FP)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_IN_FLIGHT

    await idempotency.complete(CLIENT, "k1", 201, {}, b"done")
    stored = await idempotency.begin(CLIENT, "k1", FP)
    assert stored is not None
    assert stored.body == b"done"


async def test_expired_lease_with_other_payload_is_still_refused_with_422(
    idempotency: IdempotencyStore, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    clock.advance(LEASE * 2)
    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "k1", OTHER_FP)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_REUSED


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_error_is_not_stored_and_the_next_begin_proceeds(
    idempotency: IdempotencyStore, store: Store, status: int
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    await idempotency.complete(CLIENT, "k1", status, {"content-type": "text/plain"}, b"boom")
    assert await record(store, "k1") is None
    assert await idempotency.begin(CLIENT, "k1", FP) is None


async def test_client_error_answer_is_stored_for_replay(idempotency: IdempotencyStore) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    await idempotency.complete(CLIENT, "k1", 409, {"content-type": "application/json"}, b"{}")
    stored = await idempotency.begin(CLIENT, "k1", FP)
    assert stored is not None
    assert stored.status_code == 409


async def test_release_lets_a_retry_run_again(idempotency: IdempotencyStore, store: Store) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    await idempotency.release(CLIENT, "k1")
    assert await record(store, "k1") is None
    assert await idempotency.begin(CLIENT, "k1", FP) is None


async def test_release_never_forgets_a_completed_answer(
    idempotency: IdempotencyStore,
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    await idempotency.complete(CLIENT, "k1", 201, {}, b"kept")
    await idempotency.release(CLIENT, "k1")
    stored = await idempotency.begin(CLIENT, "k1", FP)
    assert stored is not None
    assert stored.body == b"kept"


async def test_keys_of_two_clients_do_not_collide(idempotency: IdempotencyStore) -> None:
    assert await idempotency.begin("client-a", "same-key", FP) is None
    assert await idempotency.begin("client-b", "same-key", OTHER_FP) is None
    await idempotency.complete("client-a", "same-key", 201, {}, b"a")
    await idempotency.complete("client-b", "same-key", 200, {}, b"b")

    stored_a = await idempotency.begin("client-a", "same-key", FP)
    stored_b = await idempotency.begin("client-b", "same-key", OTHER_FP)
    assert stored_a == StoredResponse(201, {}, b"a")
    assert stored_b == StoredResponse(200, {}, b"b")


async def test_expired_answer_is_forgotten_and_the_key_is_new_again(
    idempotency: IdempotencyStore, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    await idempotency.complete(CLIENT, "k1", 201, {}, b"old")
    clock.advance(RETENTION)
    assert await idempotency.begin(CLIENT, "k1", OTHER_FP) is None
    await idempotency.complete(CLIENT, "k1", 201, {}, b"new")
    stored = await idempotency.begin(CLIENT, "k1", OTHER_FP)
    assert stored is not None
    assert stored.body == b"new"


async def test_replays_of_a_completed_answer_need_no_write_transaction(
    idempotency: IdempotencyStore, database: Database
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    await idempotency.complete(CLIENT, "k1", 201, {}, b"answer")
    first = await idempotency.begin(CLIENT, "k1", FP)
    writes = database.write_generation

    again = [await idempotency.begin(CLIENT, "k1", FP) for _ in range(3)]

    assert first is not None and first.body == b"answer"
    assert again == [first] * 3
    assert database.write_generation == writes


async def test_a_remembered_answer_still_refuses_another_payload_and_expires(
    idempotency: IdempotencyStore, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "k1", FP) is None
    await idempotency.complete(CLIENT, "k1", 201, {}, b"old")
    assert await idempotency.begin(CLIENT, "k1", FP) is not None  # remembered from here on

    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "k1", OTHER_FP)
    clock.advance(RETENTION)
    after_retention = await idempotency.begin(CLIENT, "k1", OTHER_FP)

    assert problem_of(exc_info) == IDEMPOTENCY_KEY_REUSED
    assert after_retention is None  # the key is new again: this request goes ahead


async def test_purge_deletes_only_records_past_their_retention(
    idempotency: IdempotencyStore, store: Store, clock: ManualClock
) -> None:
    assert await idempotency.begin(CLIENT, "old", FP) is None
    await idempotency.complete(CLIENT, "old", 201, {}, b"old")
    clock.advance(RETENTION / 2)
    assert await idempotency.begin(CLIENT, "young", FP) is None
    await idempotency.complete(CLIENT, "young", 201, {}, b"young")

    assert await idempotency.purge() == 0
    clock.advance(RETENTION / 2 - timedelta(seconds=1))
    assert await idempotency.purge() == 0
    clock.advance(timedelta(seconds=1))

    assert await idempotency.purge() == 1
    assert await record(store, "old") is None
    assert await record(store, "young") is not None
    assert await idempotency.purge() == 0


async def test_purge_works_in_batches_of_limit(
    idempotency: IdempotencyStore, store: Store, clock: ManualClock
) -> None:
    for i in range(5):
        assert await idempotency.begin(CLIENT, f"k{i}", FP) is None
    clock.advance(RETENTION)
    assert await idempotency.purge(limit=2) == 2
    assert await idempotency.purge(limit=2) == 2
    assert await idempotency.purge(limit=2) == 1
    assert await idempotency.purge(limit=2) == 0
    assert await count_records(store) == 0


async def test_purge_deletes_a_full_default_batch_of_expired_records(
    idempotency: IdempotencyStore, store: Store, clock: ManualClock
) -> None:
    """A busy day leaves more expired records than one batch; the purge must take them all."""
    expired_at = clock.now() - timedelta(seconds=1)
    rows = [
        {
            "client_id": f"client-{n % 7}",
            "key": f"k{n}",
            "fingerprint": FP,
            "state": "completed",
            "status_code": 201,
            "response_headers": {},
            "response_body": b"{}",
            "created_at": expired_at - RETENTION,
            "completed_at": expired_at - RETENTION,
            "expires_at": expired_at,
        }
        for n in range(10_001)
    ]
    await store.database.write(lambda conn: conn.execute(idempotency_keys.insert(), rows))
    assert await idempotency.begin(CLIENT, "live", FP) is None

    assert await idempotency.purge() == 10_000
    assert await idempotency.purge() == 1
    assert await idempotency.purge() == 0
    assert await count_records(store) == 1
    assert await record(store, "live") is not None


async def test_twenty_concurrent_first_requests_let_exactly_one_proceed(
    idempotency: IdempotencyStore,
) -> None:
    results = await asyncio.gather(
        *(idempotency.begin(CLIENT, "race", FP) for _ in range(20)), return_exceptions=True
    )
    proceeded = [r for r in results if r is None]
    refused = [r for r in results if isinstance(r, ProblemError)]
    assert len(proceeded) == 1
    assert len(refused) == 19
    assert {e.problem for e in refused} == {IDEMPOTENCY_KEY_IN_FLIGHT}


class RacingStore(Store):
    """A Store whose first `losses` writes lose an insert race to a concurrent request."""

    def __init__(self, store: Store, *, fingerprint: str, losses: int = 1) -> None:
        super().__init__(store.database, store.clock)
        self.fingerprint = fingerprint
        self.losses = losses

    async def write(self, fn: Callable[[UnitOfWork], T]) -> T:
        if self.losses > 0:
            self.losses -= 1
            await super().write(self._insert_competitor)
            raise IntegrityError("INSERT INTO partner_idempotency_keys", {}, Exception("unique"))
        return await super().write(fn)

    def _insert_competitor(self, uow: UnitOfWork) -> None:
        uow.conn.execute(idempotency_keys.delete().where(idempotency_keys.c.key == "race"))
        uow.conn.execute(
            idempotency_keys.insert().values(
                client_id=CLIENT,
                key="race",
                fingerprint=self.fingerprint,
                state="in_flight",
                lease_until=uow.now + LEASE,
                created_at=uow.now,
                expires_at=uow.now + RETENTION,
            )
        )


@pytest.mark.parametrize(
    ("competitor", "problem"), [(FP, IDEMPOTENCY_KEY_IN_FLIGHT), (OTHER_FP, IDEMPOTENCY_KEY_REUSED)]
)
async def test_begin_that_loses_the_insert_race_decides_again(
    store: Store, competitor: str, problem: ProblemType
) -> None:
    idempotency = IdempotencyStore(
        RacingStore(store, fingerprint=competitor), retention=RETENTION, lease=LEASE
    )
    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "race", FP)
    assert problem_of(exc_info) == problem


async def test_begin_that_loses_the_insert_race_twice_answers_409(store: Store) -> None:
    idempotency = IdempotencyStore(
        RacingStore(store, fingerprint=FP, losses=2), retention=RETENTION, lease=LEASE
    )
    with pytest.raises(ProblemError) as exc_info:
        await idempotency.begin(CLIENT, "race", FP)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_IN_FLIGHT


def test_retention_and_lease_must_be_positive(store: Store) -> None:
    with pytest.raises(ValueError, match="positive"):
        IdempotencyStore(store, retention=timedelta(0), lease=LEASE)
    with pytest.raises(ValueError, match="positive"):
        IdempotencyStore(store, retention=RETENTION, lease=timedelta(0))


# ---------------------------------------------------------------- IdempotentRequest.run


class Producer:
    """A produce() callable that counts its calls and answers with what it was given."""

    def __init__(self, answer: Callable[[], Response]) -> None:
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> Response:
        self.calls += 1
        await asyncio.sleep(0)
        return self.answer()


def request(idempotency: IdempotencyStore, key: str = "k1", fp: str = FP) -> IdempotentRequest:
    return IdempotentRequest(idempotency, CLIENT, key, fp)


async def test_run_answers_once_and_replays_status_body_and_replayable_headers(
    idempotency: IdempotencyStore,
) -> None:
    produce = Producer(
        lambda: JSONResponse(
            {"order_id": "o-1"},
            status_code=201,
            headers={
                "Location": "/partner/v1/orders/o-1",
                "RateLimit-Remaining": "9",
                "X-Correlation-ID": "corr-1",
            },
        )
    )
    first = await request(idempotency).run(produce)
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers

    replay = await request(idempotency).run(produce)
    assert produce.calls == 1
    assert replay.status_code == 201
    assert replay.body == first.body
    assert json.loads(bytes(replay.body)) == {"order_id": "o-1"}
    assert replay.headers["content-type"] == "application/json"
    assert replay.headers["location"] == "/partner/v1/orders/o-1"
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["content-length"] == str(len(first.body))
    assert "ratelimit-remaining" not in replay.headers
    assert "x-correlation-id" not in replay.headers


async def test_run_stores_a_problem_answer_and_replays_it(
    idempotency: IdempotencyStore,
) -> None:
    calls = 0

    async def reject() -> Response:
        nonlocal calls
        calls += 1
        raise ProblemError(ORDER_REJECTED, "The price list changed.", reason="price")

    first = await request(idempotency).run(reject)
    assert first.status_code == 409
    assert first.headers["content-type"] == "application/problem+json"
    problem = json.loads(bytes(first.body))
    assert problem["code"] == "order-rejected"
    assert problem["detail"] == "The price list changed."
    assert problem["reason"] == "price"

    replay = await request(idempotency).run(reject)
    assert calls == 1
    assert replay.status_code == 409
    assert replay.body == first.body
    assert replay.headers["content-type"] == "application/problem+json"
    assert replay.headers["idempotent-replayed"] == "true"


async def test_run_does_not_store_a_server_error_problem(idempotency: IdempotencyStore) -> None:
    calls = 0

    async def unavailable() -> Response:
        nonlocal calls
        calls += 1
        raise ProblemError(BACKEND_UNAVAILABLE)

    assert (await request(idempotency).run(unavailable)).status_code == 503
    assert (await request(idempotency).run(unavailable)).status_code == 503
    assert calls == 2


async def test_run_releases_the_key_when_produce_fails(
    idempotency: IdempotencyStore, store: Store
) -> None:
    async def crash() -> Response:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        await request(idempotency).run(crash)
    assert await record(store, "k1") is None

    produce = Producer(lambda: Response(b"ok", media_type="text/plain"))
    assert (await request(idempotency).run(produce)).body == b"ok"
    assert produce.calls == 1


async def test_run_releases_the_key_when_the_task_is_cancelled(
    idempotency: IdempotencyStore, store: Store
) -> None:
    started = asyncio.Event()

    async def hang() -> Response:
        started.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(request(idempotency).run(hang))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await record(store, "k1") is None
    assert await idempotency.begin(CLIENT, "k1", FP) is None


async def test_run_releases_the_key_inside_a_cancelled_anyio_scope(
    idempotency: IdempotencyStore, store: Store
) -> None:
    with anyio.CancelScope() as scope:

        async def cancelled() -> Response:
            scope.cancel()
            await anyio.sleep_forever()
            raise AssertionError("unreachable")

        await request(idempotency).run(cancelled)
    assert scope.cancelled_caught
    assert await record(store, "k1") is None


async def test_run_refuses_a_reused_key_without_producing(
    idempotency: IdempotencyStore,
) -> None:
    produce = Producer(lambda: Response(b"ok"))
    await request(idempotency).run(produce)
    with pytest.raises(ProblemError) as exc_info:
        await request(idempotency, fp=OTHER_FP).run(produce)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_REUSED
    assert produce.calls == 1


async def test_run_refuses_a_retry_while_the_first_is_running(
    idempotency: IdempotencyStore,
) -> None:
    started = asyncio.Event()
    finish = asyncio.Event()

    async def slow() -> Response:
        started.set()
        await finish.wait()
        return Response(b"done", status_code=201)

    first = asyncio.create_task(request(idempotency).run(slow))
    await started.wait()
    with pytest.raises(ProblemError) as exc_info:
        await request(idempotency).run(slow)
    assert problem_of(exc_info) == IDEMPOTENCY_KEY_IN_FLIGHT
    finish.set()
    assert (await first).status_code == 201
    replay = await request(idempotency).run(slow)
    assert replay.body == b"done"


async def test_run_of_a_conflict_problem_keeps_its_headers_out_of_the_replay(
    idempotency: IdempotencyStore,
) -> None:
    async def conflict() -> Response:
        raise ProblemError(CONFLICT, headers={"X-Extra": "1"})

    first = await request(idempotency).run(conflict)
    assert first.headers["x-extra"] == "1"
    replay = await request(idempotency).run(conflict)
    assert "x-extra" not in replay.headers
    assert replay.status_code == 409


async def test_a_request_that_lost_its_lease_cannot_release_or_answer_for_its_successor(
    idempotency: IdempotencyStore, clock: ManualClock
) -> None:
    store = idempotency
    fingerprint = request_fingerprint("POST", "/orders", b"{}")
    assert await store.begin("c1", "k", fingerprint, lease_token="slow") is None
    clock.advance(store.lease + timedelta(seconds=1))
    assert await store.begin("c1", "k", fingerprint, lease_token="retry") is None  # takes over

    await store.release("c1", "k", lease_token="slow")  # the slow request gives up late
    await store.complete("c1", "k", 201, {}, b"slow", lease_token="slow")

    with pytest.raises(ProblemError) as still_running:
        await store.begin("c1", "k", fingerprint, lease_token="third")
    assert still_running.value.problem is IDEMPOTENCY_KEY_IN_FLIGHT
    await store.complete("c1", "k", 201, {}, b"retry", lease_token="retry")
    replay = await store.begin("c1", "k", fingerprint, lease_token="fourth")
    assert replay is not None and replay.body == b"retry"


# ---------------------------------------------------------------- answers stored with the work


class StoreWatch(Store):
    """A Store that counts the write transactions it runs."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.database, store.clock)
        self.writes = 0

    async def write(self, fn: Callable[[UnitOfWork], T]) -> T:
        self.writes += 1
        return await super().write(fn)


async def test_an_answer_written_with_the_work_commits_with_it_and_is_replayed(
    store: Store,
) -> None:
    watched = StoreWatch(store)
    idempotency = IdempotencyStore(watched, retention=RETENTION, lease=LEASE)
    one = request(idempotency)
    write_answer = one.answering(
        lambda order_id: JSONResponse({"order_id": order_id}, status_code=201)
    )

    async def produce() -> Response:
        def work(uow: UnitOfWork) -> str:
            write_answer(uow, "o-1")  # the work's own statements would come before
            return "o-1"

        await watched.write(work)
        assert one.answered is not None
        return one.answered

    first = await one.run(produce)
    assert first.status_code == 201
    assert watched.writes == 2  # the key's lease, then the work with its answer: nothing after
    stored = await record(store, "k1")
    assert stored is not None
    assert stored["state"] == "completed"

    replay = await request(idempotency).run(produce)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.body == first.body


async def test_an_answer_written_with_work_that_rolls_back_is_not_stored(
    idempotency: IdempotencyStore, store: Store
) -> None:
    one = request(idempotency)
    write_answer = one.answering(lambda _: JSONResponse({"order_id": "o-1"}, status_code=201))

    async def produce() -> Response:
        def work(uow: UnitOfWork) -> None:
            write_answer(uow, None)
            raise RuntimeError("the work failed after its answer was written")

        await store.write(work)
        return Response(b"unreachable")

    with pytest.raises(RuntimeError, match="failed after"):
        await one.run(produce)
    assert one.answered is None
    assert await record(store, "k1") is None  # released: a retry runs the request again


async def test_a_problem_answer_written_with_the_work_is_stored_as_a_problem(
    idempotency: IdempotencyStore, store: Store
) -> None:
    one = request(idempotency)

    def reject(_: object) -> Response:
        raise ProblemError(ORDER_REJECTED, "The price list changed.")

    write_answer = one.answering(reject)

    async def produce() -> Response:
        await store.write(lambda uow: write_answer(uow, None))
        assert one.answered is not None
        return one.answered

    first = await one.run(produce)
    assert first.status_code == 409
    replay = await request(idempotency).run(produce)
    assert replay.status_code == 409
    assert replay.body == first.body
