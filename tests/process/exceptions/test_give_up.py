"""A workflow step that still fails after its retry policy becomes one exception, routed by the
configured rules, that remembers the step so it can be run again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest

from contracts import Money
from contracts.exceptions import ExceptionStatus, FailedStep, Severity
from gateway_infra.clock import ManualClock
from gateway_infra.database import Database
from gateway_infra.scheduler import DueTimer, Scheduler, schedule
from gateway_infra.unit_of_work import Store
from process_api.exceptions import (
    STEP_FAILED,
    StepSupervisor,
    install_routing,
    list_exceptions,
    load_routing_config,
    policy_for,
)
from process_api.exceptions.repository import retry_step
from tests.process.exceptions.support import ROUTING, insert_order

STEP = "catalogue.publish"


class FlakyStep:
    """A step that fails while `down` is set, and counts its runs."""

    def __init__(self) -> None:
        self.down = True
        self.runs = 0

    async def __call__(self, timer: DueTimer) -> None:
        self.runs += 1
        if self.down:
            raise ConnectionError(f"catalogue service unreachable (run {self.runs})")


@pytest.fixture
async def store(database_url: str, clock: ManualClock) -> AsyncIterator[Store]:
    database = Database(database_url)
    built = Store(database, clock)
    install_routing(built, load_routing_config(ROUTING))
    yield built
    database.dispose()


async def start_step(store: Store, payload: dict[str, str]) -> None:
    await store.write(
        lambda uow: schedule(
            uow.conn, kind=STEP, key="SKU-1", due_at=uow.now, now=uow.now, payload=payload
        )
    )


async def run_until_quiet(scheduler: Scheduler, clock: ManualClock, rounds: int) -> None:
    """Let the scheduler retry for `rounds` rounds, each past the longest backoff."""
    for _ in range(rounds):
        await scheduler.run_due()
        clock.advance(timedelta(hours=1))


async def test_a_step_that_exhausts_its_retries_opens_exactly_one_routed_exception(
    store: Store, clock: ManualClock
) -> None:
    scheduler = Scheduler(store)
    step = FlakyStep()
    StepSupervisor(store, workflow="reference_data").register(scheduler, STEP, step)
    await start_step(store, {"sku": "SKU-1", "channel": "webshop"})

    await run_until_quiet(scheduler, clock, rounds=30)

    attempts = policy_for("reference_data").retry.max_attempts
    assert step.runs == attempts
    [raised] = await store.read(lambda conn: list_exceptions(conn))
    assert (raised.workflow, raised.code, raised.subject, raised.channel) == (
        "reference_data",
        STEP_FAILED,
        "inventory/SKU-1",
        "webshop",
    )
    assert raised.object_ids == {"step": STEP, "sku": "SKU-1"}
    assert f"failed {attempts} times" in raised.detail
    assert f"catalogue service unreachable (run {attempts})" in raised.detail
    # Routed by the "reference data" rule: its team, the workflow's severity and SLA.
    assert raised.owner_team == "master-data"
    assert raised.severity is Severity.LOW
    assert raised.status is ExceptionStatus.OPEN
    assert raised.failed_step == FailedStep(kind=STEP, key="SKU-1")
    gave_up_at = raised.created_at
    assert raised.due_at == gave_up_at + policy_for("reference_data").sla
    assert raised.occurrences == 1


async def test_an_order_step_carries_the_orders_channel_and_value_into_routing(
    store: Store, clock: ManualClock
) -> None:
    order_id = await insert_order(store, total="1250.00")
    scheduler = Scheduler(store)
    StepSupervisor(store, workflow="order_capture").register(scheduler, STEP, FlakyStep())
    await store.write(
        lambda uow: schedule(
            uow.conn,
            kind=STEP,
            key=order_id,
            due_at=uow.now,
            now=uow.now,
            payload={"order_id": order_id},
        )
    )

    await run_until_quiet(scheduler, clock, rounds=60)

    [raised] = await store.read(lambda conn: list_exceptions(conn))
    assert raised.subject == f"order/{order_id}"
    assert raised.channel == "webshop"
    assert raised.object_ids == {
        "step": STEP,
        "order_id": order_id,
        "channel_order_id": "CH-BIG-1",
    }
    assert raised.money_at_risk == Money(amount=Decimal("1250.00"), currency="EUR")
    # The first rule: order capture with at least 1000 EUR at risk.
    assert (raised.owner_team, raised.severity) == ("key-accounts", Severity.CRITICAL)
    assert raised.due_at == raised.created_at + timedelta(minutes=15)


async def test_a_step_run_again_that_fails_again_reopens_the_same_exception(
    store: Store, clock: ManualClock
) -> None:
    scheduler = Scheduler(store)
    step = FlakyStep()
    StepSupervisor(store, workflow="reference_data").register(scheduler, STEP, step)
    await start_step(store, {"sku": "SKU-1"})
    await run_until_quiet(scheduler, clock, rounds=30)
    [raised] = await store.read(lambda conn: list_exceptions(conn))

    retried = await store.write(lambda uow: retry_step(uow, raised.exception_id, actor="ops"))
    assert retried.status is ExceptionStatus.ACKNOWLEDGED
    await run_until_quiet(scheduler, clock, rounds=30)

    [again] = await store.read(lambda conn: list_exceptions(conn))
    assert again.exception_id == raised.exception_id
    assert again.status is ExceptionStatus.OPEN
    assert again.occurrences == 2
    assert [entry.action for entry in again.history] == ["raised", "retry", "raised_again"]


async def test_a_step_that_succeeds_after_a_retry_resolves_its_exception(
    store: Store, clock: ManualClock
) -> None:
    scheduler = Scheduler(store)
    step = FlakyStep()
    StepSupervisor(store, workflow="reference_data").register(scheduler, STEP, step)
    await start_step(store, {"sku": "SKU-1"})
    await run_until_quiet(scheduler, clock, rounds=30)
    [raised] = await store.read(lambda conn: list_exceptions(conn))

    step.down = False
    await store.write(lambda uow: retry_step(uow, raised.exception_id, actor="ops"))
    assert await scheduler.run_due() == 1

    [resolved] = await store.read(lambda conn: list_exceptions(conn))
    assert resolved.status is ExceptionStatus.RESOLVED
    assert [entry.action for entry in resolved.history] == ["raised", "retry", "resolved"]
    assert resolved.history[-1].note == f"{STEP} succeeded on attempt 1"
