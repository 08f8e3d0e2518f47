"""What every step of the Amazon adapter shares: its profile, HTTP client and store, the
exception records it opens (and how a call that failed for good becomes one, resolved once the
step succeeds), and how it follows its submitted feeds to Amazon's processing report."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import TypeVar

from contracts import Money
from contracts.exceptions import Severity
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import open_exception, resolve_exceptions
from process_api.marketplaces.amazon import feeds
from process_api.marketplaces.amazon import repository as repo
from process_api.marketplaces.amazon.http import (
    UNREADABLE_COMPRESSION,
    AmazonError,
    SpApiClient,
    UnreadableDocument,
)
from process_api.marketplaces.amazon.profile import AmazonProfile
from process_api.marketplaces.port import SyncReport

log = logging.getLogger("gateway.marketplaces.amazon")

ACTOR = "amazon"
BATCH = 100
CALL_FAILED = "amazon_call_failed"
Report = TypeVar("Report")


class AmazonStep:
    """One part of the sync round, on one Amazon marketplace."""

    def __init__(self, profile: AmazonProfile, client: SpApiClient, store: Store) -> None:
        self.profile = profile
        self.channel = profile.channel
        self.client = client
        self.store = store

    def record_exception(
        self,
        uow: UnitOfWork,
        *,
        workflow: str,
        code: str,
        subject: str,
        detail: str,
        object_ids: Mapping[str, str],
        money_at_risk: Money | None = None,
    ) -> str:
        """A high-severity exception of this channel, in the caller's unit of work."""
        return open_exception(
            uow,
            workflow=workflow,
            code=code,
            subject=subject[:200],
            channel=self.channel,
            severity=Severity.HIGH,
            detail=detail[:4000],
            object_ids=object_ids,
            money_at_risk=money_at_risk,
        )

    async def new_exception(
        self,
        *,
        workflow: str,
        code: str,
        subject: str,
        detail: str,
        object_ids: Mapping[str, str],
    ) -> str:
        """record_exception in a unit of work of its own."""
        return await self.store.write(
            lambda uow: self.record_exception(
                uow,
                workflow=workflow,
                code=code,
                subject=subject,
                detail=detail,
                object_ids=object_ids,
            )
        )

    async def call_failed(self, workflow: str, exc: AmazonError, subject: str) -> str:
        """A call that failed for good (throttled throughout, refused, unreachable)."""
        log.warning(
            "amazon call failed",
            extra={"channel": self.channel, "operation": exc.operation, "error": exc.detail},
        )
        return await self.new_exception(
            workflow=workflow,
            code=CALL_FAILED,
            subject=f"amazon/{self.channel}/{subject}",
            detail=(
                f"Amazon {exc.operation} failed: {exc.detail}. The step is retried at the "
                "next sync round; this record closes once it succeeds."
            ),
            object_ids={"operation": exc.operation},
        )

    async def call_succeeded(self, subject: str) -> None:
        await self.store.write(
            lambda uow: resolve_exceptions(
                uow,
                subject=f"amazon/{self.channel}/{subject}"[:200],
                codes=[CALL_FAILED],
                note="the call succeeded",
            )
        )

    async def track_feeds(
        self,
        feed_type: str,
        workflow: str,
        read: Callable[[bytes], Report],
        apply: Callable[[repo.Feed, Report, SyncReport], Awaitable[list[str]]],
        failed: Callable[[repo.Feed, str], Awaitable[str]],
    ) -> SyncReport:
        """Each submitted feed of the type until Amazon is done with it: its processing report
        (read, then applied) once DONE; failed when it ended CANCELLED or FATAL, or its report
        cannot be read; a call that fails is asked again next round."""
        report = SyncReport()
        waiting = await self.store.read(
            lambda conn: repo.feeds_in(conn, self.channel, (repo.SUBMITTED,), feed_type)
        )
        for feed in waiting:
            try:
                outcome = await feeds.feed_outcome(self.client, feed.feed_id)
                if outcome.waiting:
                    continue
                if outcome.report is None:
                    report.exceptions.append(await failed(feed, outcome.status))
                    continue
                processing = read(outcome.report)
            except UnreadableDocument as exc:
                report.exceptions.append(await failed(feed, f"unreadable report: {exc}"))
                continue
            except AmazonError as exc:
                report.exceptions.append(
                    await self.call_failed(workflow, exc, f"feed/{feed.feed_id}")
                )
                continue
            except (ValueError, KeyError, *UNREADABLE_COMPRESSION) as exc:
                report.exceptions.append(await failed(feed, f"unreadable report: {exc}"))
                continue
            report.exceptions.extend(await apply(feed, processing, report))
            report.feeds_finished += 1
        return report


def timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a Z, as Amazon writes it."""
    return value.isoformat().replace("+00:00", "Z")
