"""The Amazon Selling Partner API adapter: pulls orders into the canonical order lifecycle,
confirms shipments per package, pushes availability and prices (patches or a listings feed),
tracks feeds until their processing report confirms each message, and turns whatever Amazon
refuses or keeps throttling into exception records."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from contracts import Money, OrderStatus
from contracts.exceptions import Severity
from gateway_infra.problems import ProblemError
from gateway_infra.scheduler import Recurring
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import open_exception, resolve_exceptions
from process_api.marketplaces.amazon import listings
from process_api.marketplaces.amazon import repository as repo
from process_api.marketplaces.amazon.http import AmazonError, SpApiClient
from process_api.marketplaces.amazon.listings import ListingChange, Promotion
from process_api.marketplaces.amazon.orders import (
    Action,
    UnmappableOrder,
    action_for,
    fulfilment_status,
    last_updated,
    to_submission,
    unpriced_skus,
)
from process_api.marketplaces.amazon.profile import AmazonProfile
from process_api.marketplaces.port import SyncReport
from process_api.order_to_cash.service import OrderService
from system_api.errors import BackendUnavailable

log = logging.getLogger("gateway.marketplaces.amazon")

ACTOR = "amazon"
ORDERS_PATH = "/orders/2026-01-01/orders"
INCLUDED_DATA = "BUYER,RECIPIENT,FULFILLMENT,PROCEEDS"
BATCH = 100
FEED_STATES_WAITING = frozenset({"IN_QUEUE", "IN_PROGRESS"})
# Exception codes, one per thing a person must do something about.
CALL_FAILED = "amazon_call_failed"
ORDER_UNMAPPABLE = "amazon_order_unmappable"
SELLER_CANCELLATION = "amazon_seller_cancellation_needed"
CANCEL_REFUSED = "amazon_cancellation_after_shipment"
SHIPMENT_REFUSED = "amazon_shipment_confirmation_refused"
LISTING_REFUSED = "amazon_listing_refused"
FEED_FAILED = "amazon_feed_failed"


class AmazonAdapter:
    """One Amazon marketplace (a channel profile) driven through the SP-API."""

    def __init__(
        self, profile: AmazonProfile, client: SpApiClient, store: Store, orders: OrderService
    ) -> None:
        self.profile = profile
        self.channel = profile.channel
        self.client = client
        self.store = store
        self.orders = orders

    async def aclose(self) -> None:
        await self.client.aclose()

    def sync_job(self) -> Recurring:
        """One round of every step, every poll interval, on whichever gateway claims it."""
        return Recurring(
            self.store,
            f"marketplace.amazon.{self.channel}",
            timedelta(seconds=self.profile.poll_seconds),
            self._scheduled_round,
        )

    async def _scheduled_round(self) -> None:
        report = await self.sync_round()
        log.info("amazon sync round", extra={"channel": self.channel, **_figures(report)})

    async def sync_round(self) -> SyncReport:
        report = SyncReport()
        for step in (
            self.pull_orders,
            self.confirm_shipments,
            self.push_listings,
            self.track_submissions,
        ):
            done = await step()
            for name, value in vars(done).items():
                current = getattr(report, name)
                setattr(report, name, current + value)
        return report

    # ------------------------------------------------------------ failures

    async def _call_failed(self, workflow: str, exc: AmazonError, subject: str) -> str:
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

    async def _call_succeeded(self, subject: str) -> None:
        await self.store.write(
            lambda uow: resolve_exceptions(
                uow,
                subject=f"amazon/{self.channel}/{subject}"[:200],
                codes=[CALL_FAILED],
                note="the call succeeded",
            )
        )

    # ------------------------------------------------------------ orders

    async def pull_orders(self) -> SyncReport:
        """Orders updated since the durable cursor, page by page (the cursor moves after each
        page, so a crash pulls at most that page again, which changes nothing)."""
        report = SyncReport()
        cursor = await self.store.read(lambda conn: repo.load_cursor(conn, self.channel))
        if cursor is None:
            start = self.store.clock.now() - timedelta(hours=self.profile.first_pull_lookback_hours)
            cursor = repo.Cursor(start, None)
        try:
            for _ in range(self.profile.max_pages_per_round):
                params: dict[str, str | int] = {
                    "marketplaceIds": self.profile.marketplace_id,
                    "lastUpdatedAfter": _timestamp(cursor.updated_after),
                    "includedData": INCLUDED_DATA,
                    "maxResultsPerPage": BATCH,
                }
                if cursor.pagination_token:
                    params["paginationToken"] = cursor.pagination_token
                body = (
                    await self.client.call("searchOrders", "GET", ORDERS_PATH, params=params)
                ).json()
                for order in body.get("orders") or []:
                    await self._take_order(order, report)
                next_token = (body.get("pagination") or {}).get("nextToken")
                cursor = repo.Cursor(
                    cursor.updated_after if next_token else _next_start(body, cursor),
                    next_token or None,
                )
                await self._save_cursor(cursor)
                if not next_token:
                    break
        except AmazonError as exc:
            report.exceptions.append(await self._call_failed("order_capture", exc, "searchOrders"))
            return report
        await self._call_succeeded("searchOrders")
        return report

    async def _save_cursor(self, cursor: repo.Cursor) -> None:
        await self.store.write(
            lambda uow: repo.save_cursor(uow.conn, self.channel, cursor, uow.now)
        )

    async def take_order(self, order: dict[str, Any]) -> SyncReport:
        """Map one Amazon order (as searchOrders returns it) into the canonical lifecycle."""
        report = SyncReport()
        await self._take_order(order, report)
        return report

    async def _take_order(self, order: dict[str, Any], report: SyncReport) -> None:
        report.orders_seen += 1
        amazon_id = str(order.get("orderId") or "")
        try:
            status = fulfilment_status(order)
            action = action_for(status)
        except UnmappableOrder as exc:
            report.exceptions.append(await self._unmappable(amazon_id, str(exc)))
            return
        seen = await self.store.read(lambda conn: repo.seen_order(conn, self.channel, amazon_id))
        if seen is not None and seen.fulfillment_status == status:
            return
        order_id = seen.order_id if seen else None
        if action is Action.CANCEL:
            if order_id is not None:
                await self._cancel(order_id, amazon_id, report)
        elif seen is not None and (
            action is Action.HOLD or action_for(seen.fulfillment_status) is Action.ACCEPT
        ):
            # Already held or accepted: Amazon does not move an order back to pending, and
            # unshipped -> shipped changes nothing the gateway does not know from its warehouse.
            pass
        else:
            try:
                submission = to_submission(
                    order, channel=self.channel, list_prices=await self._list_prices(order)
                )
            except UnmappableOrder as exc:
                report.exceptions.append(await self._unmappable(amazon_id, str(exc)))
                return
            try:
                submitted = await self.orders.submit(submission, actor=ACTOR)
            except ProblemError as exc:
                report.exceptions.append(await self._unmappable(amazon_id, exc.detail or ""))
                return
            order_id = submitted.order.order_id
            report.orders_created += int(submitted.created)
            if submitted.order.status is OrderStatus.REJECTED:
                report.exceptions.append(await self._refused(submitted.order.order_id, amazon_id))
        stamp = last_updated(order)
        await self.store.write(
            lambda uow: repo.record_seen(
                uow.conn,
                channel=self.channel,
                amazon_order_id=amazon_id,
                order_id=order_id,
                status=status,
                last_updated=stamp,
                now=uow.now,
            )
        )

    async def _list_prices(self, order: dict[str, Any]) -> dict[str, Money]:
        """The ERP's list prices of the items Amazon sent without a price."""
        prices: dict[str, Money] = {}
        for sku in sorted(unpriced_skus(order)):
            try:
                product = await self.orders.erp.get_product(sku)
            except BackendUnavailable:
                continue  # priced at zero; validation waits for the ERP anyway
            if product is not None:
                prices[sku] = product.list_price
        return prices

    async def _cancel(self, order_id: str, amazon_id: str, report: SyncReport) -> None:
        try:
            await self.orders.cancel(order_id, actor=ACTOR, reason="cancelled on Amazon")
            report.orders_cancelled += 1
        except ProblemError as exc:
            # Amazon cancelled an order that has left the warehouse: a person must intercept
            # the parcel or claim it back.
            why = exc.detail

            def unit(uow: UnitOfWork) -> str:
                return open_exception(
                    uow,
                    workflow="order_capture",
                    code=CANCEL_REFUSED,
                    subject=f"order/{order_id}",
                    channel=self.channel,
                    severity=Severity.HIGH,
                    detail=(
                        f"Amazon cancelled order {amazon_id}, which the gateway can no longer "
                        f"cancel: {why}"
                    )[:4000],
                    object_ids={"order_id": order_id, "channel_order_id": amazon_id},
                )

            report.exceptions.append(await self.store.write(unit))

    async def _refused(self, order_id: str, amazon_id: str) -> str:
        """Amazon has no acknowledgement step: an order the gateway refuses must be cancelled
        by the seller on Amazon, which this exception asks for."""
        order = await self.orders.require(order_id)
        reasons = "; ".join(f"{r.line_id}: {r.detail}" for r in order.rejections) or "refused"

        def unit(uow: UnitOfWork) -> str:
            return open_exception(
                uow,
                workflow="order_capture",
                code=SELLER_CANCELLATION,
                subject=f"order/{order_id}",
                channel=self.channel,
                money_at_risk=order.total,
                severity=Severity.HIGH,
                detail=(
                    f"The gateway refused Amazon order {amazon_id} ({reasons}). Amazon has no "
                    "acknowledgement step: cancel the order as the seller on Amazon "
                    "(reason: no inventory), then resolve this record."
                )[:4000],
                object_ids={"order_id": order_id, "channel_order_id": amazon_id},
            )

        return await self.store.write(unit)

    async def _unmappable(self, amazon_id: str, detail: str) -> str:
        def unit(uow: UnitOfWork) -> str:
            return open_exception(
                uow,
                workflow="order_capture",
                code=ORDER_UNMAPPABLE,
                subject=f"amazon/{self.channel}/order/{amazon_id or 'unknown'}"[:200],
                channel=self.channel,
                severity=Severity.HIGH,
                detail=f"Amazon order {amazon_id} could not be taken in: {detail}"[:4000],
                object_ids={"channel_order_id": amazon_id[:128] or "unknown"},
            )

        return await self.store.write(unit)

    # ------------------------------------------------------------ shipments

    async def confirm_shipments(self) -> SyncReport:
        """One confirmShipment per package the warehouse confirmed; its packageReferenceId is
        the package's stable row id, so a confirmation sent again (Amazon took it but the
        gateway stopped before recording that) corrects that package, never adds one."""
        report = SyncReport()
        packages = await self.store.read(
            lambda conn: repo.packages_to_confirm(conn, self.channel, BATCH)
        )
        for package in packages:
            subject = f"shipment/{package.order_id}/{package.package_id}"
            try:
                await self.client.call(
                    "confirmShipment",
                    "POST",
                    f"/orders/v0/orders/{package.amazon_order_id}/shipmentConfirmation",
                    json=self.confirmation(package),
                    expect=(204,),
                )
            except AmazonError as exc:
                report.exceptions.append(await self._shipment_refused(package, exc))
                continue

            def unit(
                uow: UnitOfWork, package: repo.PackageToConfirm = package, subject: str = subject
            ) -> None:
                repo.record_confirmation(uow.conn, package, self.channel, uow.now)
                resolve_exceptions(
                    uow,
                    subject=f"amazon/{self.channel}/{subject}"[:200],
                    codes=[SHIPMENT_REFUSED, CALL_FAILED],
                    note="Amazon took the shipment confirmation",
                )

            await self.store.write(unit)
            report.packages_confirmed += 1
        return report

    def confirmation(self, package: repo.PackageToConfirm) -> dict[str, Any]:
        """The ConfirmShipmentRequest of one package."""
        carrier_code = self.profile.carrier_codes.get(package.carrier)
        detail: dict[str, Any] = {
            "packageReferenceId": str(package.package_id),
            "carrierCode": carrier_code or "Other",
            "trackingNumber": package.tracking_number,
            "shipDate": _timestamp(package.shipped_at),
            "orderItems": [
                {"orderItemId": str(line["line_id"]), "quantity": int(line["quantity"])}
                for line in package.lines
            ],
        }
        if carrier_code is None:
            detail["carrierName"] = package.carrier
        return {"marketplaceId": self.profile.marketplace_id, "packageDetail": detail}

    async def _shipment_refused(self, package: repo.PackageToConfirm, exc: AmazonError) -> str:
        def unit(uow: UnitOfWork) -> str:
            return open_exception(
                uow,
                workflow="shipment_confirmation",
                code=SHIPMENT_REFUSED,
                subject=f"amazon/{self.channel}/shipment/{package.order_id}/{package.package_id}",
                channel=self.channel,
                severity=Severity.HIGH,
                detail=(
                    f"Amazon did not take the confirmation of package {package.package_id} of "
                    f"order {package.amazon_order_id}: {exc.detail}. Retried every sync round."
                )[:4000],
                object_ids={"order_id": package.order_id, "package_id": str(package.package_id)},
            )

        return await self.store.write(unit)

    # ------------------------------------------------------------ availability and prices

    async def pending_changes(self) -> list[ListingChange]:
        """Availability values and sent price changes Amazon has not confirmed, less those in
        a feed still processing or already refused by Amazon in that same form."""

        def read(conn: Any) -> list[ListingChange]:
            skip = {
                (m["kind"], m["sku"], m["reference"])
                for feed in repo.feeds_in(conn, self.channel, (repo.SUBMITTED, repo.PARTLY_REFUSED))
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
                    await self._call_failed(_workflow(change), exc, f"listing/{change.sku}")
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
            created = (
                await self.client.call(
                    "createFeedDocument",
                    "POST",
                    "/feeds/2021-06-30/documents",
                    json={"contentType": listings.FEED_CONTENT_TYPE},
                    expect=(201,),
                )
            ).json()
            await self.client.upload_document(
                str(created["url"]),
                json.dumps(document).encode(),
                listings.FEED_CONTENT_TYPE,
            )
            feed = (
                await self.client.call(
                    "createFeed",
                    "POST",
                    "/feeds/2021-06-30/feeds",
                    json={
                        "feedType": listings.FEED_TYPE,
                        "marketplaceIds": [self.profile.marketplace_id],
                        "inputFeedDocumentId": str(created["feedDocumentId"]),
                    },
                    expect=(202,),
                )
            ).json()
        except AmazonError as exc:
            report.exceptions.append(await self._call_failed("inventory_sync", exc, "feed"))
            return report
        messages = [
            {"message_id": n, "sku": c.sku, "kind": c.kind, "reference": c.reference}
            for n, c in enumerate(changes, start=1)
        ]
        feed_id = str(feed["feedId"])
        await self.store.write(
            lambda uow: repo.insert_feed(
                uow.conn,
                feed_id=feed_id,
                channel=self.channel,
                document_id=str(created["feedDocumentId"]),
                messages=messages,
                now=uow.now,
            )
        )
        await self._call_succeeded("feed")
        for change in changes:
            _count_sent(report, change)
        return report

    async def track_submissions(self) -> SyncReport:
        """Each submitted feed until Amazon is done with it; a DONE feed confirms only the
        messages its processing report does not refuse."""
        report = SyncReport()
        feeds = await self.store.read(
            lambda conn: repo.feeds_in(conn, self.channel, (repo.SUBMITTED,))
        )
        for feed in feeds:
            try:
                status = (
                    await self.client.call(
                        "getFeed", "GET", f"/feeds/2021-06-30/feeds/{feed.feed_id}"
                    )
                ).json()
                state = status.get("processingStatus")
                if state in FEED_STATES_WAITING:
                    continue
                if state != "DONE":
                    report.exceptions.append(await self._feed_failed(feed, str(state)))
                    continue
                result = (
                    await self.client.call(
                        "getFeedDocument",
                        "GET",
                        f"/feeds/2021-06-30/documents/{status['resultFeedDocumentId']}",
                    )
                ).json()
                content = await self.client.download_document(
                    str(result["url"]), result.get("compressionAlgorithm")
                )
                processing = json.loads(content)
            except AmazonError as exc:
                report.exceptions.append(
                    await self._call_failed("inventory_sync", exc, f"feed/{feed.feed_id}")
                )
                continue
            except (ValueError, KeyError, OSError) as exc:  # OSError: not gzip after all
                report.exceptions.append(await self._feed_failed(feed, f"unreadable report: {exc}"))
                continue
            report.exceptions.extend(await self._apply_report(feed, processing, report))
            report.feeds_finished += 1
        return report

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
            return open_exception(
                uow,
                workflow="inventory_sync",
                code=FEED_FAILED,
                subject=f"amazon/{self.channel}/feed/{feed.feed_id}"[:200],
                channel=self.channel,
                severity=Severity.HIGH,
                detail=(
                    f"Amazon feed {feed.feed_id} ended {state}; none of its "
                    f"{len(feed.messages)} changes is confirmed. They are sent again next round."
                )[:4000],
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
        return open_exception(
            uow,
            workflow=_workflow(change),
            code=LISTING_REFUSED,
            subject=f"amazon/{self.channel}/listing/{change.sku}"[:200],
            channel=self.channel,
            severity=Severity.HIGH,
            detail=(f"Amazon refused the {change.kind} of {change.sku}: {'; '.join(errors)}")[
                :4000
            ],
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


def _figures(report: SyncReport) -> dict[str, int]:
    figures = {k: v for k, v in vars(report).items() if isinstance(v, int)}
    figures["exceptions"] = len(report.exceptions)
    return figures


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


def _timestamp(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _next_start(body: dict[str, Any], cursor: repo.Cursor) -> datetime:
    """Where the next pull starts: Amazon's lastUpdatedBefore bound of this one, else the
    latest update seen, else where this one started."""
    bound = body.get("lastUpdatedBefore")
    if isinstance(bound, str):
        return datetime.fromisoformat(bound)
    stamps = [s for s in (last_updated(o) for o in body.get("orders") or []) if s is not None]
    return max([cursor.updated_after, *stamps])
