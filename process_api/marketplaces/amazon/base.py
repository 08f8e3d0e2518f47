"""What every step of the Amazon adapter shares: its profile, HTTP client and store, and how a
call that failed for good becomes an exception record (and resolves once the step succeeds)."""

from __future__ import annotations

import logging
from datetime import datetime

from contracts.exceptions import Severity
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import open_exception, resolve_exceptions
from process_api.marketplaces.amazon.http import AmazonError, SpApiClient
from process_api.marketplaces.amazon.profile import AmazonProfile

log = logging.getLogger("gateway.marketplaces.amazon")

ACTOR = "amazon"
BATCH = 100
CALL_FAILED = "amazon_call_failed"


class AmazonStep:
    """One part of the sync round, on one Amazon marketplace."""

    def __init__(self, profile: AmazonProfile, client: SpApiClient, store: Store) -> None:
        self.profile = profile
        self.channel = profile.channel
        self.client = client
        self.store = store

    async def call_failed(self, workflow: str, exc: AmazonError, subject: str) -> str:
        """A call that failed for good (throttled throughout, refused, unreachable)."""
        log.warning(
            "amazon call failed",
            extra={"channel": self.channel, "operation": exc.operation, "error": exc.detail},
        )

        def unit(uow: UnitOfWork) -> str:
            return open_exception(
                uow,
                workflow=workflow,
                code=CALL_FAILED,
                subject=f"amazon/{self.channel}/{subject}"[:200],
                channel=self.channel,
                severity=Severity.HIGH,
                detail=(
                    f"Amazon {exc.operation} failed: {exc.detail}. The step is retried at the "
                    "next sync round; this record closes once it succeeds."
                )[:4000],
                object_ids={"operation": exc.operation},
            )

        return await self.store.write(unit)

    async def call_succeeded(self, subject: str) -> None:
        await self.store.write(
            lambda uow: resolve_exceptions(
                uow,
                subject=f"amazon/{self.channel}/{subject}"[:200],
                codes=[CALL_FAILED],
                note="the call succeeded",
            )
        )


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, as Amazon writes it."""
    return value.isoformat().replace("+00:00", "Z")
