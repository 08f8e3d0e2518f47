"""Amazon orders into the canonical lifecycle: searchOrders (Orders API 2026-01-01) by last
update through a durable cursor; pending orders hold stock, confirmed ones are accepted,
cancelled ones release it; an order the gateway refuses is recorded for a seller cancellation
(sent by the cancellation step)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from contracts import Money, OrderStatus
from gateway_infra.problems import ProblemError
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.marketplaces.amazon import acknowledgements as ack
from process_api.marketplaces.amazon import repository as repo
from process_api.marketplaces.amazon.base import ACTOR, BATCH, AmazonStep, timestamp
from process_api.marketplaces.amazon.cancellation_sync import (
    SELLER_CANCELLATION,
    cancelled_on_amazon,
    refused_detail,
    seller_cancellation_subject,
)
from process_api.marketplaces.amazon.http import AmazonError, SpApiClient, json_of
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

ORDERS_PATH = "/orders/2026-01-01/orders"
INCLUDED_DATA = "BUYER,RECIPIENT,FULFILLMENT,PROCEEDS"
ORDER_UNMAPPABLE = "amazon_order_unmappable"
CANCEL_REFUSED = "amazon_cancellation_after_shipment"


class OrderSync(AmazonStep):
    """Pulls the marketplace's orders into the gateway's order-to-cash workflow."""

    def __init__(
        self, profile: AmazonProfile, client: SpApiClient, store: Store, orders: OrderService
    ) -> None:
        super().__init__(profile, client, store)
        self.orders = orders

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
                    "lastUpdatedAfter": timestamp(cursor.updated_after),
                    "includedData": INCLUDED_DATA,
                    "maxResultsPerPage": BATCH,
                }
                if cursor.pagination_token:
                    params["paginationToken"] = cursor.pagination_token
                body = json_of(
                    "searchOrders",
                    await self.client.call("searchOrders", "GET", ORDERS_PATH, params=params),
                )
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
            report.exceptions.append(await self.call_failed("order_capture", exc, "searchOrders"))
            return report
        await self.call_succeeded("searchOrders")
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
                exception_id = await self._refused(submitted.order.order_id, amazon_id)
                if exception_id is not None:
                    report.exceptions.append(exception_id)
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
        order = await self.orders.require(order_id)
        if order.status is OrderStatus.REJECTED:
            # The gateway refused it and holds nothing for it: Amazon now shows the seller
            # cancellation done (or the buyer cancelled first).
            await self.store.write(lambda uow: cancelled_on_amazon(uow, order_id, amazon_id))
            return
        try:
            await self.orders.cancel(order_id, actor=ACTOR, reason="cancelled on Amazon")
            report.orders_cancelled += 1
        except ProblemError as exc:
            # Amazon cancelled an order that has left the warehouse: a person must intercept
            # the parcel or claim it back.
            report.exceptions.append(
                await self.new_exception(
                    workflow="order_capture",
                    code=CANCEL_REFUSED,
                    subject=f"order/{order_id}",
                    detail=(
                        f"Amazon cancelled order {amazon_id}, which the gateway can no longer "
                        f"cancel: {exc.detail}"
                    ),
                    object_ids={"order_id": order_id, "channel_order_id": amazon_id},
                )
            )

    async def _refused(self, order_id: str, amazon_id: str) -> str | None:
        """Amazon has no acknowledgement step: an order the gateway refuses is cancelled on
        Amazon as the seller. The cancellation is recorded here, with the exception that shows
        it to people; the cancellation step sends it and resolves the exception once Amazon's
        processing report accepts it."""
        order = await self.orders.require(order_id)
        reasons = "; ".join(f"{r.line_id}: {r.detail}" for r in order.rejections) or "refused"
        cancellation = repo.Cancellation(
            order_id=order_id,
            amazon_order_id=amazon_id,
            items=[
                {"item": i.item, "reason": i.reason}
                for i in ack.cancelled_items(order.lines, order.rejections)
            ],
        )

        def unit(uow: UnitOfWork) -> str | None:
            detail = (
                f"The gateway refused Amazon order {amazon_id} ({reasons}). Amazon has no "
                "acknowledgement step: the gateway cancels the order on Amazon as the seller "
                "(an order acknowledgement feed); this record resolves once Amazon accepts the "
                "cancellation, and stays open with Amazon's answer if it does not."
            )
            if not repo.request_cancellation(uow.conn, cancellation, self.channel, uow.now):
                # Taken in again (a pull repeated, or a later state of the same order): the
                # cancellation recorded first stands, and so does what Amazon said of it.
                known = repo.get_cancellation(uow.conn, order_id)
                if known is not None and known.state == repo.ACCEPTED:
                    return None
                if known is not None and known.state == repo.REFUSED:
                    detail = refused_detail(amazon_id, known.detail or "refused")
            return self.record_exception(
                uow,
                workflow="order_capture",
                code=SELLER_CANCELLATION,
                subject=seller_cancellation_subject(order_id),
                money_at_risk=order.total,
                detail=detail,
                object_ids={"order_id": order_id, "channel_order_id": amazon_id},
            )

        return await self.store.write(unit)

    async def _unmappable(self, amazon_id: str, detail: str) -> str:
        return await self.new_exception(
            workflow="order_capture",
            code=ORDER_UNMAPPABLE,
            subject=f"amazon/{self.channel}/order/{amazon_id or 'unknown'}",
            detail=f"Amazon order {amazon_id} could not be taken in: {detail}",
            object_ids={"channel_order_id": amazon_id[:128] or "unknown"},
        )


def _next_start(body: dict[str, Any], cursor: repo.Cursor) -> datetime:
    """Where the next pull starts: Amazon's lastUpdatedBefore bound of this one, else the
    latest update seen, else where this one started."""
    bound = body.get("lastUpdatedBefore")
    if isinstance(bound, str):
        return datetime.fromisoformat(bound)
    stamps = [s for s in (last_updated(o) for o in body.get("orders") or []) if s is not None]
    return max([cursor.updated_after, *stamps])
