"""Recurring upkeep of the partner edge: expired idempotency records are purged every hour."""

from __future__ import annotations

from datetime import timedelta

from gateway_infra.scheduler import Recurring
from gateway_infra.unit_of_work import Store
from partner_api.idempotency import IdempotencyStore

PURGE_TIMER = "partner.idempotency.purge"
PURGE_EVERY = timedelta(hours=1)
PURGE_BATCH = 10_000


class IdempotencyPurge(Recurring):
    """Deletes idempotency records past their retention, then schedules its next round."""

    def __init__(self, store: Store, idempotency: IdempotencyStore) -> None:
        super().__init__(store, PURGE_TIMER, PURGE_EVERY, self._purge)
        self.idempotency = idempotency

    async def _purge(self) -> None:
        while await self.idempotency.purge(limit=PURGE_BATCH) == PURGE_BATCH:
            pass
