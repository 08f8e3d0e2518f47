"""The durable scheduler: timers run once when due, retry with backoff, outlive owner crashes."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import JsonValue
from sqlalchemy import Connection, select, update

from gateway_infra.clock import ManualClock
from gateway_infra.correlation import correlation_id_var
from gateway_infra.database import Database
from gateway_infra.scheduler import (
    FAILED,
    PENDING,
    DueTimer,
    Recurring,
    RetryPolicy,
    Scheduler,
    cancel,
    ensure_scheduled,
    schedule,
)
from gateway_infra.tables import outbox, timers
from gateway_infra.unit_of_work import Store, UnitOfWork

KIND = "reservation.expire"
LEASE = timedelta(seconds=60)


def make_scheduler(store: Store, owner: str = "a", seed: int = 1) -> Scheduler:
    return Scheduler(store, lease=LEASE, owner=owner, rng=random.Random(seed))


@pytest.fixture
def scheduler(store: Store) -> Scheduler:
    return make_scheduler(store)


@dataclass
class Recorder:
    """A timer handler that records what it was given, and fails when told to."""

    fail_with: Exception | None = None
    calls: list[DueTimer] = field(default_factory=list)
    correlation_ids: list[str | None] = field(default_factory=list)

    async def __call__(self, timer: DueTimer) -> None:
        self.calls.append(timer)
        self.correlation_ids.append(correlation_id_var.get())
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with

    @property
    def keys(self) -> list[str]:
        return [t.key for t in self.calls]


@dataclass
class GiveUpRecorder:
    calls: list[tuple[DueTimer, str]] = field(default_factory=list)

    async def __call__(self, timer: DueTimer, error: str) -> None:
        self.calls.append((timer, error))


async def schedule_in(
    store: Store,
    delay: timedelta,
    *,
    key: str = "res-1",
    kind: str = KIND,
    payload: Mapping[str, JsonValue] | None = None,
) -> datetime:
    def unit(uow: UnitOfWork) -> datetime:
        due_at = uow.now + delay
        schedule(uow.conn, kind=kind, key=key, due_at=due_at, now=uow.now, payload=payload)
        return due_at

    return await store.write(unit)


async def timer_rows(store: Store) -> list[Any]:
    def read(conn: Connection) -> list[Any]:
        return list(conn.execute(select(timers).order_by(timers.c.id)).all())

    return await store.read(read)


async def only_timer(store: Store) -> Any:
    rows = await timer_rows(store)
    assert len(rows) == 1, rows
    return rows[0]


# --- running when due -------------------------------------------------------------------------


async def test_a_timer_runs_only_once_its_due_time_has_come(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    due_at = await schedule_in(store, timedelta(minutes=10), payload={"sku": "MUG-RED-350"})

    assert await scheduler.run_due() == 0
    clock.advance(timedelta(minutes=10) - timedelta(microseconds=1))
    assert await scheduler.run_due() == 0
    assert handler.calls == []

    clock.advance(timedelta(microseconds=1))
    assert await scheduler.run_due() == 1

    (timer,) = handler.calls
    assert (timer.kind, timer.key) == (KIND, "res-1")
    assert timer.due_at == due_at
    assert timer.payload == {"sku": "MUG-RED-350"}
    assert timer.attempts == 1


async def test_a_successful_handler_deletes_its_timer_so_it_never_runs_again(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    await schedule_in(store, timedelta(0))

    assert await scheduler.run_due() == 1
    assert await timer_rows(store) == []

    clock.advance(timedelta(days=1))
    assert await scheduler.run_due() == 0
    assert len(handler.calls) == 1


async def test_due_timers_run_in_order_of_their_due_time(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    await schedule_in(store, timedelta(minutes=3), key="third")
    await schedule_in(store, timedelta(minutes=1), key="first")
    await schedule_in(store, timedelta(minutes=2), key="second")

    clock.advance(timedelta(minutes=5))
    assert await scheduler.run_due() == 3

    assert handler.keys == ["first", "second", "third"]


async def test_run_due_runs_at_most_limit_timers_and_leaves_the_rest_for_the_next_round(
    store: Store, scheduler: Scheduler
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    for key in ("k1", "k2", "k3"):
        await schedule_in(store, timedelta(0), key=key)

    assert await scheduler.run_due(limit=2) == 2
    assert handler.keys == ["k1", "k2"]
    assert await scheduler.run_due(limit=2) == 1
    assert handler.keys == ["k1", "k2", "k3"]


# --- scheduling and cancelling ----------------------------------------------------------------


async def test_scheduling_the_same_kind_and_key_again_moves_the_timer_instead_of_adding_one(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    await schedule_in(store, timedelta(minutes=10), payload={"version": 1})
    moved_to = await schedule_in(store, timedelta(minutes=30), payload={"version": 2})

    row = await only_timer(store)
    assert row.due_at == moved_to
    assert row.payload == {"version": 2}
    assert row.generation == 1

    clock.advance(timedelta(minutes=10))
    assert await scheduler.run_due() == 0
    clock.advance(timedelta(minutes=20))
    assert await scheduler.run_due() == 1
    assert [t.payload for t in handler.calls] == [{"version": 2}]


async def test_the_same_key_under_another_kind_is_a_separate_timer(store: Store) -> None:
    await schedule_in(store, timedelta(minutes=1), kind="reservation.expire", key="res-1")
    await schedule_in(store, timedelta(minutes=1), kind="ack.deadline", key="res-1")

    assert sorted(r.kind for r in await timer_rows(store)) == ["ack.deadline", "reservation.expire"]


async def test_cancel_removes_the_timer_so_it_never_runs(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    await schedule_in(store, timedelta(minutes=5))

    assert await store.write(lambda uow: cancel(uow.conn, kind=KIND, key="res-1")) is True
    assert await timer_rows(store) == []

    clock.advance(timedelta(minutes=10))
    assert await scheduler.run_due() == 0
    assert handler.calls == []


async def test_cancelling_a_timer_that_does_not_exist_reports_false(store: Store) -> None:
    assert await store.write(lambda uow: cancel(uow.conn, kind=KIND, key="nothing")) is False


async def test_a_handler_that_reschedules_its_own_timer_keeps_the_new_timer(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    calls: list[DueTimer] = []

    async def renew(timer: DueTimer) -> None:
        calls.append(timer)
        if len(calls) == 1:
            await schedule_in(store, timedelta(hours=1), key=timer.key)

    scheduler.register(KIND, renew)
    await schedule_in(store, timedelta(0))

    assert await scheduler.run_due() == 1
    row = await only_timer(store)
    assert row.state == PENDING
    assert row.due_at == clock.now() + timedelta(hours=1)

    clock.advance(timedelta(hours=1))
    assert await scheduler.run_due() == 1
    assert len(calls) == 2
    assert await timer_rows(store) == []


def test_registering_a_second_handler_for_a_kind_is_refused(scheduler: Scheduler) -> None:
    scheduler.register(KIND, Recorder())

    with pytest.raises(ValueError, match="already registered"):
        scheduler.register(KIND, Recorder())


# --- failures, retries and giving up ----------------------------------------------------------


async def test_a_failing_handler_is_retried_with_growing_backoff_never_before_the_delay(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    policy = RetryPolicy(max_attempts=5, base_delay=timedelta(seconds=10))
    handler = Recorder(fail_with=RuntimeError("erp unreachable"))
    scheduler.register(KIND, handler, retry=policy)
    await schedule_in(store, timedelta(0))
    failed_at = clock.now()

    assert await scheduler.run_due() == 1
    row = await only_timer(store)
    first_delay = row.due_at - failed_at
    assert timedelta(seconds=5) <= first_delay <= timedelta(seconds=10)
    assert (row.state, row.attempts) == (PENDING, 1)
    assert row.last_error == "RuntimeError: erp unreachable"
    assert (row.lease_owner, row.lease_until) == (None, None)

    clock.set(row.due_at - timedelta(microseconds=1))
    assert await scheduler.run_due() == 0
    assert len(handler.calls) == 1

    clock.set(row.due_at)
    failed_at = clock.now()
    assert await scheduler.run_due() == 1
    assert [t.attempts for t in handler.calls] == [1, 2]
    row = await only_timer(store)
    second_delay = row.due_at - failed_at
    assert timedelta(seconds=10) <= second_delay <= timedelta(seconds=20)
    assert second_delay >= first_delay
    assert (row.state, row.attempts) == (PENDING, 2)


async def test_a_handler_that_keeps_failing_is_given_up_after_max_attempts_and_kept_as_failed(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=timedelta(seconds=10))
    handler = Recorder(fail_with=RuntimeError("erp unreachable"))
    gave_up = GiveUpRecorder()
    scheduler.register(KIND, handler, retry=policy, on_give_up=gave_up)
    await schedule_in(store, timedelta(0))

    for attempt in (1, 2):
        assert await scheduler.run_due() == 1
        assert gave_up.calls == []
        row = await only_timer(store)
        assert (row.state, row.attempts) == (PENDING, attempt)
        clock.set(row.due_at)

    assert await scheduler.run_due() == 1

    assert [t.attempts for t in handler.calls] == [1, 2, 3]
    ((timer, error),) = gave_up.calls
    assert (timer.kind, timer.key, timer.attempts) == (KIND, "res-1", 3)
    assert error == "RuntimeError: erp unreachable"
    row = await only_timer(store)
    assert (row.state, row.attempts) == (FAILED, 3)
    assert row.last_error == "RuntimeError: erp unreachable"
    assert (row.lease_owner, row.lease_until) == (None, None)

    clock.advance(timedelta(days=30))
    assert await scheduler.run_due() == 0
    assert len(handler.calls) == 3
    assert len(gave_up.calls) == 1


async def test_scheduling_a_failed_timer_again_makes_it_pending_with_fresh_attempts(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder(fail_with=RuntimeError("erp unreachable"))
    scheduler.register(KIND, handler, retry=RetryPolicy(max_attempts=1))
    await schedule_in(store, timedelta(0))
    assert await scheduler.run_due() == 1
    assert (await only_timer(store)).state == FAILED

    await schedule_in(store, timedelta(minutes=1))

    row = await only_timer(store)
    assert (row.state, row.attempts, row.last_error) == (PENDING, 0, None)
    handler.fail_with = None
    clock.advance(timedelta(minutes=1))
    assert await scheduler.run_due() == 1
    assert await timer_rows(store) == []


async def test_ensuring_a_recurring_timer_revives_it_after_it_gave_up_and_leaves_it_otherwise(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder(fail_with=RuntimeError("disk full"))
    scheduler.register(KIND, handler, retry=RetryPolicy(max_attempts=1))

    def ensure(due_in: timedelta) -> None:
        store.write_sync(
            lambda uow: ensure_scheduled(
                uow.conn, kind=KIND, key="purge", due_at=uow.now + due_in, now=uow.now
            )
        )

    ensure(timedelta(0))
    assert await scheduler.run_due() == 1
    assert (await only_timer(store)).state == FAILED

    ensure(timedelta(hours=1))
    revived = await only_timer(store)
    ensure(timedelta(hours=5))  # pending: left as it is

    assert (revived.state, revived.attempts) == (PENDING, 0)
    assert (await only_timer(store)).due_at == revived.due_at == clock.now() + timedelta(hours=1)


@pytest.mark.parametrize(
    ("attempt", "low", "high"),
    [
        (1, 2.5, 5.0),
        (2, 5.0, 10.0),
        (3, 10.0, 20.0),
        (4, 20.0, 40.0),
        (5, 30.0, 60.0),
        (9, 30.0, 60.0),
    ],
)
def test_retry_delay_is_jittered_between_half_and_all_of_a_doubling_capped_ceiling(
    attempt: int, low: float, high: float
) -> None:
    policy = RetryPolicy(base_delay=timedelta(seconds=5), max_delay=timedelta(seconds=60))
    rng = random.Random(7)

    delays = [policy.delay_after(attempt, rng).total_seconds() for _ in range(50)]

    assert all(low <= d <= high for d in delays)


def test_retry_delays_are_reproducible_with_a_seeded_rng() -> None:
    policy = RetryPolicy()

    first = [policy.delay_after(n, random.Random(3)) for n in range(1, 6)]
    second = [policy.delay_after(n, random.Random(3)) for n in range(1, 6)]

    assert first == second


# --- leases and several schedulers ------------------------------------------------------------


async def test_a_timer_leased_by_another_scheduler_runs_only_after_the_lease_expires(
    store: Store, clock: ManualClock
) -> None:
    sched_a = make_scheduler(store, owner="a", seed=1)
    sched_b = make_scheduler(store, owner="b", seed=2)
    handler_a, handler_b = Recorder(), Recorder()
    sched_a.register(KIND, handler_a)
    sched_b.register(KIND, handler_b)
    await schedule_in(store, timedelta(0))

    # "a" claims the timer and crashes before its handler finishes.
    claimed = store.database.run_write(lambda conn: sched_a._claim(conn, 10))
    assert [t.key for t in claimed] == ["res-1"]
    row = await only_timer(store)
    assert (row.lease_owner, row.lease_until) == ("a", clock.now() + LEASE)

    assert await sched_b.run_due() == 0
    clock.advance(LEASE - timedelta(seconds=1))
    assert await sched_b.run_due() == 0
    assert handler_b.calls == []

    clock.advance(timedelta(seconds=2))
    assert await sched_b.run_due() == 1

    (timer,) = handler_b.calls
    assert timer.key == "res-1"
    assert timer.attempts == 2  # the crashed attempt of "a" counts
    assert handler_a.calls == []
    assert await timer_rows(store) == []


@pytest.fixture
def second_database(database_url: str) -> Iterator[Database]:
    """Another engine on the same database, as a second gateway process would have."""
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.mark.parametrize("processes", ["one_process", "two_processes"])
async def test_two_schedulers_running_concurrently_run_each_timer_exactly_once(
    store: Store, second_database: Database, clock: ManualClock, processes: str
) -> None:
    other_store = store if processes == "one_process" else Store(second_database, clock)
    sched_a = make_scheduler(store, owner="a", seed=1)
    sched_b = make_scheduler(other_store, owner="b", seed=2)
    runs: Counter[str] = Counter()

    async def count(timer: DueTimer) -> None:
        runs[timer.key] += 1
        await asyncio.sleep(0)

    sched_a.register(KIND, count)
    sched_b.register(KIND, count)
    keys = [f"res-{n:02d}" for n in range(20)]
    for key in keys:
        await schedule_in(store, timedelta(0), key=key)

    total = 0
    for _ in range(10):
        ran_a, ran_b = await asyncio.gather(sched_a.run_due(limit=4), sched_b.run_due(limit=4))
        total += ran_a + ran_b
        if ran_a + ran_b == 0:
            break

    assert total == len(keys)
    assert runs == Counter(dict.fromkeys(keys, 1))
    assert await timer_rows(store) == []


# --- correlation and unknown kinds ------------------------------------------------------------


async def test_each_handler_runs_with_a_correlation_id_of_its_own(
    store: Store, scheduler: Scheduler
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    await schedule_in(store, timedelta(0), key="res-1")
    await schedule_in(store, timedelta(0), key="res-2")

    assert await scheduler.run_due() == 2

    first, second = handler.correlation_ids
    assert first is not None
    assert second is not None
    assert first != second
    assert correlation_id_var.get() is None


async def test_events_emitted_by_a_handler_carry_the_handlers_correlation_id(
    store: Store, scheduler: Scheduler
) -> None:
    seen: list[str | None] = []

    async def expire(timer: DueTimer) -> None:
        seen.append(correlation_id_var.get())

        def announce(uow: UnitOfWork) -> None:
            uow.emit(
                "reservation.expired",
                source="process_api",
                subject=f"reservation/{timer.key}",
                data={},
            )

        await store.write(announce)

    scheduler.register(KIND, expire)
    await schedule_in(store, timedelta(0))
    assert await scheduler.run_due() == 1

    stored = await store.read(lambda conn: list(conn.execute(select(outbox.c.correlation_id))))
    assert [r.correlation_id for r in stored] == seen
    assert seen[0] is not None


async def test_timers_of_kinds_without_a_registered_handler_are_left_alone(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    await schedule_in(store, timedelta(0), kind="price.publish", key="price-1")
    await schedule_in(store, timedelta(0), kind=KIND, key="res-1")
    clock.advance(timedelta(hours=1))

    assert await scheduler.run_due() == 1

    assert handler.keys == ["res-1"]
    row = await only_timer(store)
    assert (row.kind, row.key) == ("price.publish", "price-1")
    assert (row.state, row.attempts, row.lease_owner, row.lease_until) == (PENDING, 0, None, None)


async def test_a_scheduler_without_handlers_runs_nothing_and_leaves_timers_alone(
    store: Store, scheduler: Scheduler
) -> None:
    await schedule_in(store, timedelta(0), kind="price.publish", key="price-1")

    assert await scheduler.run_due() == 0

    row = await only_timer(store)
    assert (row.state, row.attempts, row.lease_owner) == (PENDING, 0, None)


# --- long retry series and superseded timers --------------------------------------------------


@pytest.mark.parametrize("attempt", [1, 10, 44, 45, 49, 50, 200, 5000])
def test_retry_delay_never_exceeds_max_delay_however_many_attempts(attempt: int) -> None:
    policy = RetryPolicy(
        max_attempts=50, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
    )

    delay = policy.delay_after(attempt, random.Random(attempt))

    assert timedelta(0) < delay <= timedelta(minutes=10)


async def test_a_long_retry_series_backs_off_at_max_delay_and_still_gives_up_at_max_attempts(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    policy = RetryPolicy(
        max_attempts=50, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
    )
    handler = Recorder(fail_with=RuntimeError("erp unreachable"))
    gave_up = GiveUpRecorder()
    scheduler.register(KIND, handler, retry=policy, on_give_up=gave_up)
    healthy = Recorder()
    scheduler.register("price.publish", healthy)
    await schedule_in(store, timedelta(0), key="res-1")
    await schedule_in(store, timedelta(seconds=1), kind="price.publish", key="price-1")
    # Forty-four attempts have failed already, as after some hours of ERP outage.
    await store.write(lambda uow: uow.conn.execute(update(timers).values(attempts=44)))
    clock.advance(timedelta(seconds=1))

    assert await scheduler.run_due() == 2
    assert healthy.keys == ["price-1"]

    for attempt in range(45, 50):
        row = await only_timer(store)
        assert (row.state, row.attempts) == (PENDING, attempt)
        assert timedelta(minutes=5) <= row.due_at - clock.now() <= timedelta(minutes=10)
        clock.set(row.due_at)
        assert await scheduler.run_due() == 1

    row = await only_timer(store)
    assert (row.state, row.attempts) == (FAILED, 50)
    assert [t.attempts for t, _ in gave_up.calls] == [50]


async def test_no_give_up_for_a_timer_its_failing_handler_cancelled(
    store: Store, scheduler: Scheduler
) -> None:
    gave_up = GiveUpRecorder()

    async def cancel_then_fail(timer: DueTimer) -> None:
        await store.write(lambda uow: cancel(uow.conn, kind=timer.kind, key=timer.key))
        raise RuntimeError("late failure of work that is no longer wanted")

    scheduler.register(
        KIND, cancel_then_fail, retry=RetryPolicy(max_attempts=1), on_give_up=gave_up
    )
    await schedule_in(store, timedelta(0))

    assert await scheduler.run_due() == 1

    assert await timer_rows(store) == []
    assert gave_up.calls == []


async def test_no_give_up_for_a_timer_another_scheduler_took_over_and_completed(
    store: Store, clock: ManualClock
) -> None:
    async def stalled(_seconds: float) -> None:
        await asyncio.Event().wait()  # "a" is stalled: it never gets round to renewing its lease

    sched_a = Scheduler(store, lease=LEASE, owner="a", rng=random.Random(1), sleep=stalled)
    sched_b = make_scheduler(store, owner="b", seed=2)
    gave_up = GiveUpRecorder()
    completed_by_b = Recorder()

    async def outlive_the_lease_then_fail(timer: DueTimer) -> None:
        # "a" is so slow that its lease runs out and "b" runs the timer meanwhile.
        clock.advance(LEASE + timedelta(seconds=1))
        assert await sched_b.run_due() == 1
        raise RuntimeError("a failed late")

    sched_a.register(
        KIND, outlive_the_lease_then_fail, retry=RetryPolicy(max_attempts=1), on_give_up=gave_up
    )
    sched_b.register(KIND, completed_by_b)
    await schedule_in(store, timedelta(0))

    assert await sched_a.run_due() == 1

    assert completed_by_b.keys == ["res-1"]
    assert await timer_rows(store) == []
    assert gave_up.calls == []


async def test_a_timer_carries_on_the_correlation_id_of_the_work_that_scheduled_it(
    store: Store, scheduler: Scheduler
) -> None:
    handler = Recorder()
    scheduler.register(KIND, handler)
    token = correlation_id_var.set("req-scheduled")
    try:
        await schedule_in(store, timedelta(0), key="res-1")
    finally:
        correlation_id_var.reset(token)
    await schedule_in(store, timedelta(0), key="res-2")
    token = correlation_id_var.set("req-moved")
    try:
        await schedule_in(store, timedelta(0), key="res-2")  # moved by a later request
    finally:
        correlation_id_var.reset(token)

    assert await scheduler.run_due() == 2

    assert dict(zip(handler.keys, handler.correlation_ids, strict=True)) == {
        "res-1": "req-scheduled",
        "res-2": "req-moved",
    }
    assert correlation_id_var.get() is None


async def test_each_round_of_a_recurring_job_is_work_of_its_own(
    store: Store, scheduler: Scheduler, clock: ManualClock
) -> None:
    seen: list[str | None] = []

    async def job() -> None:
        seen.append(correlation_id_var.get())

    recurring = Recurring(store, "housekeeping", timedelta(minutes=1), job)
    recurring.register(scheduler)
    await recurring.ensure_scheduled()
    for _ in range(2):
        clock.advance(timedelta(minutes=1))
        assert await scheduler.run_due() == 1

    assert len(seen) == 2 and None not in seen and seen[0] != seen[1]


class Heartbeat:
    """The sleep of a scheduler's lease renewal, woken by the test one beat at a time."""

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._asleep = asyncio.Event()

    async def sleep(self, _seconds: float) -> None:
        self._asleep.set()
        await self._wake.wait()
        self._wake.clear()

    async def beat(self) -> None:
        """Wake the renewal once and wait until it sleeps again, its lease renewed."""
        async with asyncio.timeout(10):  # a hang guard only: a renewal takes milliseconds
            await self._asleep.wait()
            self._asleep.clear()
            self._wake.set()
            await self._asleep.wait()


async def test_a_recurring_round_slower_than_the_lease_keeps_it_and_never_runs_twice_at_once(
    store: Store, second_database: Database, clock: ManualClock
) -> None:
    heartbeat = Heartbeat()
    sched_a = Scheduler(store, lease=LEASE, owner="a", rng=random.Random(1), sleep=heartbeat.sleep)
    sched_b = make_scheduler(Store(second_database, clock), owner="b", seed=2)
    rounds: list[str] = []
    claimed_meanwhile: list[int] = []

    async def slow_round() -> None:
        rounds.append("started")
        for _ in range(3):  # three leases long, renewed every two thirds of one
            clock.advance(LEASE * 2 / 3)
            await heartbeat.beat()
            claimed_meanwhile.append(await sched_b.run_due())
        clock.advance(LEASE * 2 / 3)
        claimed_meanwhile.append(await sched_b.run_due())
        rounds.append("finished")

    for scheduler in (sched_a, sched_b):
        recurring = Recurring(store, "marketplace.sync", timedelta(minutes=5), slow_round)
        recurring.register(scheduler)
    await recurring.ensure_scheduled()
    clock.advance(timedelta(minutes=5))

    assert await sched_a.run_due() == 1

    assert rounds == ["started", "finished"]
    assert claimed_meanwhile == [0, 0, 0, 0]
    row = await only_timer(store)  # the next round, free for whichever scheduler comes first
    assert (row.due_at, row.lease_owner) == (clock.now() + timedelta(minutes=5), None)


async def test_a_stopped_scheduler_renews_nothing_and_its_timer_goes_to_another_after_the_lease(
    store: Store, clock: ManualClock
) -> None:
    heartbeat = Heartbeat()
    sched_a = Scheduler(store, lease=LEASE, owner="a", rng=random.Random(1), sleep=heartbeat.sleep)
    sched_b = make_scheduler(store, owner="b", seed=2)
    started = asyncio.Event()

    async def hangs(_timer: DueTimer) -> None:
        started.set()
        await asyncio.Event().wait()

    sched_a.register(KIND, hangs)
    handler_b = Recorder()
    sched_b.register(KIND, handler_b)
    await schedule_in(store, timedelta(0))
    running = asyncio.create_task(sched_a.run_due())
    await started.wait()
    clock.advance(LEASE * 2 / 3)
    await heartbeat.beat()
    running.cancel()  # the process stops
    with pytest.raises(asyncio.CancelledError):
        await running

    clock.advance(LEASE - timedelta(seconds=1))
    assert await sched_b.run_due() == 0
    clock.advance(timedelta(seconds=2))
    assert await sched_b.run_due() == 1
    assert handler_b.keys == ["res-1"]
