"""Availability and prices to Amazon: listings patches, or a JSON_LISTINGS_FEED followed until
its processing report confirms (or refuses) each message."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from gateway_infra.unit_of_work import UnitOfWork
from process_api.exceptions import resolve_exceptions
from process_api.marketplaces.amazon import feeds, listings
from process_api.marketplaces.amazon import repository as repo
from process_api.marketplaces.amazon.base import BATCH, CALL_FAILED, AmazonStep
from process_api.marketplaces.amazon.http import AmazonError
from process_api.marketplaces.amazon.listings import ListingChange, Promotion
from process_api.marketplaces.port import SyncReport

LISTING_REFUSED = "amazon_listing_refused"
FEED_FAILED = "amazon_feed_failed"


class ListingSync(AmazonStep):
    """Sends what the gateway published for the channel and follows it until Amazon confirms."""

    async def pending_changes(self) -> list[ListingChange]:
        """Availability values and sent price changes Amazon has not confirmed, less those in
        a feed still processing or already refused by Amazon in that same form."""

        def read(conn: Any) -> list[ListingChange]:
            skip = {
                (m["kind"], m["sku"], m["reference"])
                for feed in repo.feeds_in(
                    conn, self.channel, (repo.SUBMITTED, repo.PARTLY_REFUSED), listings.FEED_TYPE
                )
                for m in feed.messages
                if feed.state == repo.SUBMITTED or m.get("result") == "refused"
            }
            changes = [
                ListingChange(
                    sku=row.sku,
                    kind="availability",
                    quantity=row.quantity,
                    reference=row.published_at.isoformat(),
                )
                for row in repo.unconfirmed_availability(conn, self.channel, BATCH)
            ]
            changes.extend(_price_changes(repo.sent_price_changes(conn, self.channel, BATCH)))
            return [c for c in changes if (c.kind, c.sku, c.reference) not in skip]

        return await self.store.read(read)

    async def push_listings(self) -> SyncReport:
        changes = await self.pending_changes()
        if not changes:
            return SyncReport()
        if self.profile.listings_via == "feed":
            return await self._submit_feed(changes)
        return await self._patch_each(changes)

    async def _patch_each(self, changes: list[ListingChange]) -> SyncReport:
        report = SyncReport()
        for change in changes:
            try:
                response = await self.client.call(
                    "patchListingsItem",
                    "PATCH",
                    f"/listings/2021-08-01/items/{self.profile.seller_id}/{change.sku}",
                    params={"marketplaceIds": self.profile.marketplace_id},
                    json=listings.patch_request(change, self.profile),
                )
            except AmazonError as exc:
                report.exceptions.append(
                    await self.call_failed(_workflow(change), exc, f"listing/{change.sku}")
                )
                continue
            body = response.json()
            issues = [
                f"{i.get('code')}: {i.get('message')}"
                for i in body.get("issues") or []
                if i.get("severity") == "ERROR"
            ]
            if body.get("status") != "ACCEPTED" or issues:
                report.exceptions.append(await self._listing_refused(change, issues))
                continue
            await self.store.write(partial(self._confirm, change=change))
            report.confirmations += 1
            _count_sent(report, change)
        return report

    async def _submit_feed(self, changes: list[ListingChange]) -> SyncReport:
        report = SyncReport()
        document = listings.feed_document(changes, self.profile)
        try:
            submitted = await feeds.submit_feed(
                self.client,
                feed_type=listings.FEED_TYPE,
                content_type=listings.FEED_CONTENT_TYPE,
                content=json.dumps(document).encode(),
                marketplace_id=self.profile.marketplace_id,
            )
        except AmazonError as exc:
            report.exceptions.append(await self.call_failed("inventory_sync", exc, "feed"))
            return report
        messages = [
            {"message_id": n, "sku": c.sku, "kind": c.kind, "reference": c.reference}
            for n, c in enumerate(changes, start=1)
        ]
        await self.store.write(
            lambda uow: repo.insert_feed(
                uow.conn,
                feed_id=submitted.feed_id,
                channel=self.channel,
                feed_type=listings.FEED_TYPE,
                document_id=submitted.document_id,
                messages=messages,
                now=uow.now,
            )
        )
        await self.call_succeeded("feed")
        for change in changes:
            _count_sent(report, change)
        return report

    async def track_submissions(self) -> SyncReport:
        """Each submitted feed until Amazon is done with it; a DONE feed confirms only the
        messages its processing report does not refuse."""
        return await self.track_feeds(
            listings.FEED_TYPE, "inventory_sync", json.loads, self._apply_report, self._feed_failed
        )

    async def _apply_report(
        self, feed: repo.Feed, processing: dict[str, Any], report: SyncReport
    ) -> list[str]:
        results = listings.message_results(processing)
        opened: list[str] = []

        def unit(uow: UnitOfWork) -> None:
            messages = []
            for message in feed.messages:
                change = _change_of(message)
                errors = results.get(int(message["message_id"]), [])
                if errors:
                    opened.append(self._refusal(uow, change, errors))
                    messages.append({**message, "result": "refused"})
                    continue
                self._confirm(uow, change=change)
                report.confirmations += 1
                messages.append({**message, "result": "accepted"})
            refused = any(m["result"] == "refused" for m in messages)
            repo.finish_feed(
                uow.conn,
                feed.feed_id,
                state=repo.PARTLY_REFUSED if refused else repo.DONE,
                messages=messages,
                detail=json.dumps(processing.get("summary"))[:4000]
                if processing.get("summary")
                else None,
                now=uow.now,
            )

        await self.store.write(unit)
        return opened

    async def _feed_failed(self, feed: repo.Feed, state: str) -> str:
        """CANCELLED or FATAL: nothing in it was applied; its changes go out again."""

        def unit(uow: UnitOfWork) -> str:
            repo.finish_feed(
                uow.conn,
                feed.feed_id,
                state=repo.FAILED,
                messages=feed.messages,
                detail=state,
                now=uow.now,
            )
            return self.record_exception(
                uow,
                workflow="inventory_sync",
                code=FEED_FAILED,
                subject=f"amazon/{self.channel}/feed/{feed.feed_id}",
                detail=(
                    f"Amazon feed {feed.feed_id} ended {state}; none of its "
                    f"{len(feed.messages)} changes is confirmed. They are sent again next round."
                ),
                object_ids={"feed_id": feed.feed_id[:128]},
            )

        return await self.store.write(unit)

    def _confirm(self, uow: UnitOfWork, *, change: ListingChange) -> None:
        if change.kind == "availability":
            repo.confirm_availability(
                uow.conn,
                self.channel,
                change.sku,
                datetime.fromisoformat(change.reference),
                uow.now,
            )
        else:
            ids = [int(i) for i in change.reference.split(",")]
            for channel, sku, promotion_id in repo.confirm_price_changes(uow.conn, ids, uow.now):
                if promotion_id is not None:
                    resolve_exceptions(
                        uow,
                        subject=f"price/{channel}/{sku}/{promotion_id}"[:200],
                        codes=["promotion_unconfirmed"],
                        note="Amazon confirmed the promotion",
                    )
        resolve_exceptions(
            uow,
            subject=f"amazon/{self.channel}/listing/{change.sku}"[:200],
            codes=[LISTING_REFUSED, CALL_FAILED],
            note="Amazon took the listing change",
        )

    def _refusal(self, uow: UnitOfWork, change: ListingChange, errors: list[str]) -> str:
        return self.record_exception(
            uow,
            workflow=_workflow(change),
            code=LISTING_REFUSED,
            subject=f"amazon/{self.channel}/listing/{change.sku}",
            detail=f"Amazon refused the {change.kind} of {change.sku}: {'; '.join(errors)}",
            object_ids={"sku": change.sku},
        )

    async def _listing_refused(self, change: ListingChange, errors: list[str]) -> str:
        return await self.store.write(
            lambda uow: self._refusal(uow, change, errors or ["submission not accepted"])
        )


def _price_changes(sent: list[repo.SentPriceChange]) -> list[ListingChange]:
    """The sent price changes of each SKU as one offer: the latest base price and the
    promotions sent (a withdrawal sends the offer without them)."""
    by_sku: dict[str, list[repo.SentPriceChange]] = {}
    for change in sent:
        by_sku.setdefault(change.sku, []).append(change)
    offers = []
    for sku, changes in by_sku.items():
        our_price: Decimal | None = None
        promotions: dict[str, Promotion] = {}
        currency = str(changes[0].data.get("currency"))
        for change in changes:
            data = change.data
            if data.get("base_price") is not None:
                our_price = Decimal(str(data["base_price"]))
            promotion = data.get("promotion")
            if change.change == "promotion" and promotion:
                promotions[str(promotion["promotion_id"])] = Promotion(
                    price=Decimal(str(promotion["price"])),
                    starts_at=datetime.fromisoformat(str(promotion["starts_at"])),
                    ends_at=datetime.fromisoformat(str(promotion["ends_at"])),
                )
            elif change.change == "promotion_withdrawn":
                promotions.pop(str(data.get("promotion_id")), None)
        offers.append(
            ListingChange(
                sku=sku,
                kind="price",
                currency=currency,
                our_price=our_price,
                promotions=tuple(promotions.values()),
                reference=",".join(str(c.publication_id) for c in changes),
            )
        )
    return offers


def _change_of(message: dict[str, Any]) -> ListingChange:
    return ListingChange(
        sku=str(message["sku"]), kind=str(message["kind"]), reference=str(message["reference"])
    )


def _workflow(change: ListingChange) -> str:
    return "inventory_sync" if change.kind == "availability" else "pricing"


def _count_sent(report: SyncReport, change: ListingChange) -> None:
    if change.kind == "availability":
        report.availability_sent += 1
    else:
        report.prices_sent += 1
