"""Recurring upkeep of the partner edge: expired idempotency records are purged every hour."""

from __future__ import annotations

from datetime import timedelta

from gateway_infra.scheduler import DueTimer, Scheduler, ensure_scheduled, schedule
from gateway_infra.unit_of_work import Store, UnitOfWork
from partner_api.idempotency import IdempotencyStore

PURGE_TIMER = "partner.idempotency.purge"
PURGE_EVERY = timedelta(hours=1)
PURGE_BATCH = 10_000


class IdempotencyPurge:
    """Deletes idempotency records past their retention, then schedules its next round."""

    def __init__(self, store: Store, idempotency: IdempotencyStore) -> None:
        self.store = store
        self.idempotency = idempotency

    def register(self, scheduler: Scheduler) -> None:
        scheduler.register(PURGE_TIMER, self._run)

    async def ensure_scheduled(self) -> None:
        def ensure(uow: UnitOfWork) -> None:
            ensure_scheduled(
                uow.conn, kind=PURGE_TIMER, key="all", due_at=uow.now + PURGE_EVERY, now=uow.now
            )

        await self.store.write(ensure)

    async def _run(self, _timer: DueTimer) -> None:
        while await self.idempotency.purge(limit=PURGE_BATCH) == PURGE_BATCH:
            pass

        def next_round(uow: UnitOfWork) -> None:
            schedule(
                uow.conn, kind=PURGE_TIMER, key="all", due_at=uow.now + PURGE_EVERY, now=uow.now
            )

        await self.store.write(next_round)
