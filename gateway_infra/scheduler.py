"""The durable scheduler: timers in the database, claimed with a lease, run by kind.

Everything that happens later (reservation expiry, acknowledgement deadlines, price publication,
retries, SLA checks, purges) is a timer. Scheduling is part of the caller's unit of work, so a timer
exists exactly when the change that needs it committed. Several processes may run the scheduler:
a claimed timer is leased to one of them; a crashed owner's lease runs out and another takes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, Select, and_, bindparam, delete, or_, select, update

from gateway_infra.correlation import (
    correlation_id_var,
    current_correlation_id,
    new_correlation_id,
)
from gateway_infra.database import dialect_insert
from gateway_infra.tables import timers
from gateway_infra.tracing import span
from gateway_infra.unit_of_work import Store, UnitOfWork

log = logging.getLogger("gateway.scheduler")

PENDING = "pending"
FAILED = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, then give up after max_attempts."""

    max_attempts: int = 8
    base_delay: timedelta = timedelta(seconds=5)
    max_delay: timedelta = timedelta(minutes=30)

    def delay_after(self, attempt: int, rng: random.Random) -> timedelta:
        # Double in float seconds with a capped exponent: base_delay * 2**n as a timedelta
        # overflows after ~44 attempts (5 s base), long before a long retry series ends.
        doublings = min(max(attempt - 1, 0), 64)
        ceiling = min(
            self.max_delay.total_seconds(), self.base_delay.total_seconds() * 2.0**doublings
        )
        return timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


@dataclass(frozen=True)
class DueTimer:
    """A timer handed to its handler."""

    id: int
    kind: str
    key: str
    due_at: datetime
    payload: Mapping[str, Any]
    attempts: int
    generation: int
    correlation_id: str | None = None
    """The correlation id of the work that scheduled the timer; its run continues that work."""


TimerHandler = Callable[[DueTimer], Awaitable[None]]
GiveUpHandler = Callable[[DueTimer, str], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


def schedule(
    conn: Connection,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    now: datetime,
    payload: Mapping[str, JsonValue] | None = None,
) -> None:
    """Create the timer (kind, key), or move it to due_at if it exists; inside the caller's work.

    The timer keeps the correlation id of that work: its run carries it on."""
    values = {
        "kind": kind,
        "key": key,
        "due_at": due_at,
        "payload": dict(payload or {}),
        "correlation_id": current_correlation_id(),
        "state": PENDING,
        "generation": 0,
        "attempts": 0,
        "lease_owner": None,
        "lease_until": None,
        "last_error": None,
        "created_at": now,
    }
    conn.execute(_schedule_upsert(conn), values)


_SCHEDULE_UPSERTS: dict[str, Any] = {}


def _schedule_upsert(conn: Connection) -> Any:
    """The upsert of schedule(), built once per dialect with the values as parameters: building
    it anew for every timer (a fresh `excluded` alias of the table each time) cost more than
    running it, and orders schedule two timers each."""
    dialect = conn.dialect.name
    upsert = _SCHEDULE_UPSERTS.get(dialect)
    if upsert is None:
        insert_stmt = dialect_insert(conn, timers)
        upsert = insert_stmt.on_conflict_do_update(
            index_elements=[timers.c.kind, timers.c.key],
            set_={
                "due_at": insert_stmt.excluded.due_at,
                "payload": insert_stmt.excluded.payload,
                "correlation_id": insert_stmt.excluded.correlation_id,
                "state": PENDING,
                "generation": timers.c.generation + 1,
                "attempts": 0,
                "lease_owner": None,
                "lease_until": None,
                "last_error": None,
            },
        )
        _SCHEDULE_UPSERTS[dialect] = upsert
    return upsert


def ensure_scheduled(
    conn: Connection,
    *,
    kind: str,
    key: str,
    due_at: datetime,
    now: datetime,
    payload: Mapping[str, JsonValue] | None = None,
) -> None:
    """Create the timer (kind, key) unless it exists; for recurring jobs every replica ensures.

    A recurring timer that gave up (failed) is revived: housekeeping must not stop for good."""
    values = {
        "kind": kind,
        "key": key,
        "due_at": due_at,
        "payload": dict(payload or {}),
        "correlation_id": current_correlation_id(),
        "state": PENDING,
        "created_at": now,
    }
    insert_stmt = dialect_insert(conn, timers).values(values)
    conn.execute(
        insert_stmt.on_conflict_do_update(
            index_elements=[timers.c.kind, timers.c.key],
            set_={
                "state": PENDING,
                "due_at": insert_stmt.excluded.due_at,
                "attempts": 0,
                "generation": timers.c.generation + 1,
                "lease_owner": None,
                "lease_until": None,
            },
            where=timers.c.state == FAILED,
        )
    )


def cancel(conn: Connection, *, kind: str, key: str) -> bool:
    """Remove a timer that is no longer needed; true when there was one."""
    result = conn.execute(_CANCEL, {"b_kind": kind, "b_key": key})
    return bool(result.rowcount)


_CANCEL = delete(timers).where(
    timers.c.kind == bindparam("b_kind"), timers.c.key == bindparam("b_key")
)
"""Built once (values as parameters): deciding an order cancels two timers."""


class Scheduler:
    """Claims due timers with a lease and runs their handlers, retrying failures with backoff.

    While a handler runs, its lease is renewed every third of the lease (through `sleep`), so a
    timer is never run by two schedulers at once however long its handler takes; a stopped
    scheduler renews nothing, and its timers go to another once the lease has run out."""

    def __init__(
        self,
        store: Store,
        *,
        lease: timedelta = timedelta(seconds=60),
        owner: str | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.store = store
        self.lease = lease
        self.owner = owner or f"scheduler-{uuid.uuid4().hex[:12]}"
        self._sleep = sleep
        self._handlers: dict[str, tuple[TimerHandler, RetryPolicy, GiveUpHandler | None]] = {}
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security

    def register(
        self,
        kind: str,
        handler: TimerHandler,
        *,
        retry: RetryPolicy | None = None,
        on_give_up: GiveUpHandler | None = None,
    ) -> None:
        if kind in self._handlers:
            raise ValueError(f"a handler for timer kind {kind!r} is already registered")
        self._handlers[kind] = (handler, retry or RetryPolicy(), on_give_up)

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(self._handlers)

    def _due(self, now: datetime) -> Select[tuple[int]]:
        return select(timers.c.id).where(
            timers.c.state == PENDING,
            timers.c.due_at <= now,
            timers.c.kind.in_(self._handlers),
            or_(timers.c.lease_until.is_(None), timers.c.lease_until < now),
        )

    def _anything_due(self, conn: Connection) -> bool:
        return conn.execute(self._due(self.store.clock.now()).limit(1)).first() is not None

    def _claim(self, conn: Connection, limit: int) -> list[DueTimer]:
        now = self.store.clock.now()
        due = self._due(now).order_by(timers.c.due_at, timers.c.id).limit(limit)
        if conn.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        ids = list(conn.execute(due).scalars())
        if not ids:
            return []
        rows = conn.execute(
            update(timers)
            .where(timers.c.id.in_(ids))
            .values(
                lease_owner=self.owner,
                lease_until=now + self.lease,
                attempts=timers.c.attempts + 1,
            )
            .returning(
                timers.c.id,
                timers.c.kind,
                timers.c.key,
                timers.c.due_at,
                timers.c.payload,
                timers.c.attempts,
                timers.c.generation,
                timers.c.correlation_id,
            )
        ).all()
        claimed = [
            DueTimer(
                id=r.id,
                kind=r.kind,
                key=r.key,
                due_at=r.due_at,
                payload=r.payload,
                attempts=r.attempts,
                generation=r.generation,
                correlation_id=r.correlation_id,
            )
            for r in rows
        ]
        return sorted(claimed, key=lambda t: (t.due_at, t.id))

    def _mine(self, timer: DueTimer) -> Any:
        return and_(
            timers.c.id == timer.id,
            timers.c.generation == timer.generation,
            timers.c.lease_owner == self.owner,
        )

    async def run_due(self, limit: int = 10) -> int:
        """Run timers due by the clock's now, a few per claim; returns how many ran.

        The claimed batch shares one lease: once it has run out, the rest of the batch is left
        to whichever scheduler claims it next rather than run twice."""
        if not self._handlers:
            return 0
        # Reads first: an idle scheduler takes no write lock (and leaves the process's write
        # generation, which read caches follow, unchanged).
        if not await self.store.database.read(self._anything_due):
            return 0
        lease_ends = self.store.clock.now() + self.lease
        claimed = await self.store.database.write(lambda conn: self._claim(conn, limit))
        ran = 0
        for timer in claimed:
            if self.store.clock.now() >= lease_ends:
                break
            await self._run_one(timer, lease_ends)
            ran += 1
        return ran

    async def _run_one(self, timer: DueTimer, lease_ends: datetime) -> None:
        handler, retry, on_give_up = self._handlers[timer.kind]
        token = correlation_id_var.set(timer.correlation_id or new_correlation_id())
        try:
            with span(f"timer {timer.kind}", attributes={"gateway.timer.key": timer.key}):
                renewal = asyncio.create_task(self._keep_leased(timer, lease_ends))
                try:
                    await handler(timer)
                finally:
                    renewal.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await renewal
        except Exception as exc:  # noqa: BLE001 - a failing handler is retried, never fatal
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "timer failed",
                extra={
                    "kind": timer.kind,
                    "key": timer.key,
                    "attempt": timer.attempts,
                    "error": error,
                },
            )
            await self._after_failure(timer, retry, on_give_up, error)
        else:
            await self.store.database.write(
                lambda conn: conn.execute(delete(timers).where(self._mine(timer)))
            )
            # One line per timer run, naming the process that ran it: with several gateway
            # processes on one database, the log shows which one fired each timer (once).
            log.info(
                "timer ran",
                extra={
                    "kind": timer.kind,
                    "key": timer.key,
                    "attempt": timer.attempts,
                    "owner": self.owner,
                },
            )
        finally:
            correlation_id_var.reset(token)

    async def _keep_leased(self, timer: DueTimer, lease_ends: datetime) -> None:
        """Renew the lease of a running timer each time a third of it has passed; stop once
        the timer is no longer ours (its handler moved or cancelled it)."""
        while True:
            renew_at = lease_ends - self.lease * 2 / 3
            await self._sleep(max((renew_at - self.store.clock.now()).total_seconds(), 0.0))
            until = self.store.clock.now() + self.lease
            try:
                if not await self._finish_write(partial(self._renew, timer, until)):
                    return
            except Exception:  # noqa: BLE001 - the handler runs on; tried again shortly
                log.warning("timer lease not renewed", extra={"kind": timer.kind, "key": timer.key})
                until = self.store.clock.now() + self.lease * 5 / 6  # next try in a sixth
            lease_ends = until

    async def _finish_write(self, work: Callable[[Connection], bool]) -> bool:
        """A renewal's write, finished even when the renewal is cancelled meanwhile: its thread
        runs on regardless, so the cancellation waits for it rather than leave it holding a
        connection while the handler's own writes go on (or the database is closed)."""
        write = asyncio.ensure_future(self.store.database.write(work))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await write
            raise

    def _renew(self, timer: DueTimer, until: datetime, conn: Connection) -> bool:
        renewed = conn.execute(update(timers).where(self._mine(timer)).values(lease_until=until))
        return bool(renewed.rowcount)

    async def _after_failure(
        self, timer: DueTimer, retry: RetryPolicy, on_give_up: GiveUpHandler | None, error: str
    ) -> None:
        now = self.store.clock.now()
        if timer.attempts >= retry.max_attempts:
            values: dict[str, Any] = {"state": FAILED, "lease_owner": None, "lease_until": None}
        else:
            values = {
                "due_at": now + retry.delay_after(timer.attempts, self._rng),
                "lease_owner": None,
                "lease_until": None,
            }
        values["last_error"] = error[:2000]
        updated = await self.store.database.write(
            lambda conn: (
                conn.execute(update(timers).where(self._mine(timer)).values(**values)).rowcount
            )
        )
        # Give up only on a timer still ours (not cancelled, rescheduled or taken over meanwhile).
        if values.get("state") == FAILED and updated and on_give_up is not None:
            await on_give_up(timer, error)

    async def run_forever(self, poll_seconds: float) -> None:
        """Background loop of a gateway process; stops when cancelled."""
        while True:
            try:
                ran = await self.run_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("scheduler round failed")
                ran = 0
            if ran == 0:
                await asyncio.sleep(poll_seconds)


class Recurring:
    """A job the scheduler runs every `every`: one timer per kind, shared by every gateway
    process (each ensures it exists at start; whichever claims it runs the round). The running
    round keeps the timer's lease, so a round slower than the lease never runs twice at once."""

    def __init__(
        self,
        store: Store,
        kind: str,
        every: timedelta,
        job: Callable[[], Awaitable[None]],
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.store = store
        self.kind = kind
        self.every = every
        self.job = job
        self.retry = retry

    def register(self, scheduler: Scheduler) -> None:
        scheduler.register(self.kind, self._run, retry=self.retry)

    async def ensure_scheduled(self) -> None:
        """Create the first round's timer unless one exists (revive it if it gave up)."""

        def ensure(uow: UnitOfWork) -> None:
            ensure_scheduled(
                uow.conn, kind=self.kind, key="all", due_at=uow.now + self.every, now=uow.now
            )

        await self.store.write(ensure)

    async def _run(self, _timer: DueTimer) -> None:
        # Each round is work of its own, not a continuation of the round before.
        token = correlation_id_var.set(new_correlation_id())
        try:
            await self.job()

            def next_round(uow: UnitOfWork) -> None:
                schedule(
                    uow.conn, kind=self.kind, key="all", due_at=uow.now + self.every, now=uow.now
                )

            await self.store.write(next_round)
        finally:
            correlation_id_var.reset(token)
