"""Seller cancellations of the Amazon orders the gateway refused. Amazon has no acknowledgement
step, so a refused order must be cancelled by the seller: the refusal records the cancellation
(proc_amazon_cancellations, with the exception people see), this step sends what is recorded
as one order acknowledgement feed per round and follows the feed to its processing report,
which resolves the exception (accepted) or leaves it open with Amazon's message (refused)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions import resolve_exceptions
from process_api.marketplaces.amazon import acknowledgements as ack
from process_api.marketplaces.amazon import feeds
from process_api.marketplaces.amazon import repository as repo
from process_api.marketplaces.amazon.base import BATCH, AmazonStep
from process_api.marketplaces.amazon.http import AmazonError
from process_api.marketplaces.port import SyncReport

SELLER_CANCELLATION = "amazon_seller_cancellation_needed"
CANCELLATION_FEED_FAILED = "amazon_cancellation_feed_failed"
WORKFLOW = "order_capture"


def seller_cancellation_subject(order_id: str) -> str:
    return f"order/{order_id}"


def refused_detail(amazon_id: str, why: str) -> str:
    return (
        f"Amazon refused the seller cancellation of order {amazon_id}: {why}. Cancel the order "
        "as the seller on Amazon, then resolve this record."
    )


class CancellationSync(AmazonStep):
    """Sends the recorded seller cancellations and follows them to Amazon's verdict."""

    @property
    def _feed_subject(self) -> str:
        """One record while the channel's cancellation feeds fail; it resolves once Amazon
        processes one."""
        return f"amazon/{self.channel}/cancellation_feed"[:200]

    async def send_cancellations(self) -> SyncReport:
        """The recorded cancellations as one feed. They are claimed (moved to sending) in the
        transaction that reads them, so two senders at once never put an order in two feeds."""
        report = SyncReport()

        def claim(uow: UnitOfWork) -> tuple[list[repo.Cancellation], datetime]:
            abandoned_before = uow.now - self.abandoned_after
            claimed = repo.claim_cancellations(
                uow.conn, self.channel, BATCH, uow.now, abandoned_before
            )
            return claimed, uow.now

        waiting, claimed_at = await self.store.write(claim)
        if not waiting:
            return report
        sendable: list[repo.Cancellation] = []
        for cancellation in waiting:
            try:
                ack.cancellation_feed([_message(cancellation)], self.profile.seller_id)
            except ValueError as exc:  # an id XML cannot carry: a person cancels it by hand
                report.exceptions.append(await self._unsendable(cancellation, str(exc)))
                continue
            sendable.append(cancellation)
        if not sendable:
            return report
        waiting = sendable
        order_ids = [c.order_id for c in waiting]
        document = ack.cancellation_feed([_message(c) for c in waiting], self.profile.seller_id)
        try:
            submitted = await feeds.submit_feed(
                self.client,
                feed_type=ack.FEED_TYPE,
                content_type=ack.CONTENT_TYPE,
                content=document,
                marketplace_id=self.profile.marketplace_id,
            )
        except AmazonError as exc:
            await self.store.write(
                lambda uow: repo.release_cancellations(uow.conn, order_ids, claimed_at, uow.now)
            )
            report.exceptions.append(await self.call_failed(WORKFLOW, exc, "cancellation_feed"))
            return report
        messages = [
            {
                "message_id": n,
                "kind": "cancellation",
                "order_id": c.order_id,
                "amazon_order_id": c.amazon_order_id,
            }
            for n, c in enumerate(waiting, start=1)
        ]

        def unit(uow: UnitOfWork) -> None:
            repo.insert_feed(
                uow.conn,
                feed_id=submitted.feed_id,
                channel=self.channel,
                feed_type=ack.FEED_TYPE,
                document_id=submitted.document_id,
                messages=messages,
                now=uow.now,
            )
            repo.cancellations_submitted(
                uow.conn, order_ids, claimed_at, submitted.feed_id, uow.now
            )

        await self.store.write(unit)
        await self.call_succeeded("cancellation_feed")
        report.cancellations_sent += len(waiting)
        return report

    @property
    def abandoned_after(self) -> timedelta:
        """How long a claim lasts: twice the longest a feed submission can take under the
        profile's retries (three calls, each perhaps after a token exchange, every attempt
        timing out and backing off its longest; 90 minutes with the defaults). A claim older
        than that was left by a gateway that stopped while sending."""
        p = self.profile
        longest = 3 * 2 * p.max_attempts * (p.timeout_seconds + p.backoff_max_seconds)
        return timedelta(seconds=2 * longest)

    async def track_cancellations(self) -> SyncReport:
        """Each cancellation feed until Amazon is done with it; its processing report decides
        per order."""
        return await self.track_feeds(
            ack.FEED_TYPE, WORKFLOW, _complete_report, self._apply_report, self._feed_failed
        )

    async def _apply_report(
        self, feed: repo.Feed, processing: ack.ProcessingReport, report: SyncReport
    ) -> list[str]:
        opened: list[str] = []

        def unit(uow: UnitOfWork) -> None:
            messages: list[dict[str, Any]] = []
            for message in feed.messages:
                order_id = str(message["order_id"])
                amazon_id = str(message["amazon_order_id"])
                errors = processing.errors.get(int(message["message_id"]), [])
                if errors:
                    messages.append({**message, "result": "refused"})
                    why = "; ".join(errors)
                    if repo.finish_cancellation(
                        uow.conn,
                        order_id,
                        state=repo.REFUSED,
                        detail=why[:4000],
                        now=uow.now,
                        feed_id=feed.feed_id,
                    ):
                        opened.append(self._refused(uow, order_id, amazon_id, why))
                    continue
                messages.append({**message, "result": "accepted"})
                if repo.finish_cancellation(
                    uow.conn,
                    order_id,
                    state=repo.ACCEPTED,
                    detail=None,
                    now=uow.now,
                    feed_id=feed.feed_id,
                ):
                    resolve_exceptions(
                        uow,
                        subject=seller_cancellation_subject(order_id),
                        codes=[SELLER_CANCELLATION],
                        note=f"Amazon accepted the seller cancellation (feed {feed.feed_id})",
                    )
                    report.confirmations += 1
            refused = any(m["result"] == "refused" for m in messages)
            repo.finish_feed(
                uow.conn,
                feed.feed_id,
                state=repo.PARTLY_REFUSED if refused else repo.DONE,
                messages=messages,
                detail=str(processing.summary)[:4000] if processing.summary else None,
                now=uow.now,
            )
            resolve_exceptions(
                uow,
                subject=self._feed_subject,
                codes=[CANCELLATION_FEED_FAILED],
                note=f"Amazon processed cancellation feed {feed.feed_id}",
            )

        await self.store.write(unit)
        return opened

    def _refused(self, uow: UnitOfWork, order_id: str, amazon_id: str, why: str) -> str:
        """The seller-cancellation exception, still open, now with Amazon's reason."""
        return self.record_exception(
            uow,
            workflow=WORKFLOW,
            code=SELLER_CANCELLATION,
            subject=seller_cancellation_subject(order_id),
            detail=refused_detail(amazon_id, why),
            object_ids={"order_id": order_id, "channel_order_id": amazon_id[:128]},
        )

    async def _feed_failed(self, feed: repo.Feed, state: str) -> str:
        """CANCELLED, FATAL or an unreadable report: nothing in it is known to be applied; its
        cancellations go out again next round."""

        def unit(uow: UnitOfWork) -> str:
            repo.finish_feed(
                uow.conn,
                feed.feed_id,
                state=repo.FAILED,
                messages=feed.messages,
                detail=state[:4000],
                now=uow.now,
            )
            for message in feed.messages:
                repo.finish_cancellation(
                    uow.conn,
                    str(message["order_id"]),
                    state=repo.TO_SEND,
                    detail=f"feed {feed.feed_id} ended {state}"[:4000],
                    now=uow.now,
                    feed_id=feed.feed_id,
                )
            return self.record_exception(
                uow,
                workflow=WORKFLOW,
                code=CANCELLATION_FEED_FAILED,
                subject=self._feed_subject,
                detail=(
                    f"Amazon cancellation feed {feed.feed_id} ended {state}; none of its "
                    f"{len(feed.messages)} seller cancellations is known to be applied. They "
                    "are sent again next round."
                ),
                object_ids={"feed_id": feed.feed_id[:128]},
            )

        return await self.store.write(unit)

    async def _unsendable(self, cancellation: repo.Cancellation, why: str) -> str:
        def unit(uow: UnitOfWork) -> str:
            repo.finish_cancellation(
                uow.conn, cancellation.order_id, state=repo.REFUSED, detail=why[:4000], now=uow.now
            )
            return self._refused(uow, cancellation.order_id, cancellation.amazon_order_id, why)

        return await self.store.write(unit)


def _complete_report(content: bytes) -> ack.ProcessingReport:
    """The XML processing report, refused unless Amazon says it is Complete."""
    processing = ack.processing_report(content)
    if not processing.complete:
        raise ack.UnreadableReport("the report's StatusCode is not Complete")
    return processing


def _message(cancellation: repo.Cancellation) -> ack.OrderCancellation:
    return ack.OrderCancellation(
        cancellation.amazon_order_id,
        [ack.CancelledItem(i["item"], i["reason"]) for i in cancellation.items],
    )


def cancelled_on_amazon(uow: UnitOfWork, order_id: str, amazon_id: str) -> bool:
    """Amazon shows a refused order cancelled (the feed, a person, or the buyer did it): the
    cancellation is done and its exception resolves. False when the gateway asked for none."""
    if repo.get_cancellation(uow.conn, order_id) is None:
        return False
    repo.finish_cancellation(
        uow.conn, order_id, state=repo.ACCEPTED, detail="Amazon shows it cancelled", now=uow.now
    )
    resolve_exceptions(
        uow,
        subject=seller_cancellation_subject(order_id),
        codes=[SELLER_CANCELLATION],
        note=f"Amazon shows order {amazon_id} cancelled",
    )
    return True
