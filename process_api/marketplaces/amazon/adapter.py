"""The Amazon Selling Partner API adapter: the marketplace-adapter port for one Amazon
marketplace, its sync round made of the order, seller cancellation, shipment and listing steps
(each in its own module), scheduled every poll interval."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from gateway_infra.scheduler import Recurring
from gateway_infra.unit_of_work import Store
from process_api.marketplaces.amazon.cancellation_sync import CancellationSync
from process_api.marketplaces.amazon.http import SpApiClient
from process_api.marketplaces.amazon.listing_sync import ListingSync
from process_api.marketplaces.amazon.order_sync import OrderSync
from process_api.marketplaces.amazon.profile import AmazonProfile
from process_api.marketplaces.amazon.shipment_sync import ShipmentSync
from process_api.marketplaces.port import SyncReport
from process_api.order_to_cash.service import OrderService

log = logging.getLogger("gateway.marketplaces.amazon")


class AmazonAdapter:
    """One Amazon marketplace (a channel profile) driven through the SP-API."""

    def __init__(
        self, profile: AmazonProfile, client: SpApiClient, store: Store, orders: OrderService
    ) -> None:
        self.profile = profile
        self.channel = profile.channel
        self.client = client
        self.store = store
        self.order_sync = OrderSync(profile, client, store, orders)
        self.cancellation_sync = CancellationSync(profile, client, store)
        self.shipment_sync = ShipmentSync(profile, client, store)
        self.listing_sync = ListingSync(profile, client, store)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def pull_orders(self) -> SyncReport:
        """Orders pulled in, then the seller cancellations of those the gateway refused (and
        of any refused earlier whose cancellation is still to be sent)."""
        return _merged(
            await self.order_sync.pull_orders(), await self.cancellation_sync.send_cancellations()
        )

    async def send_cancellations(self) -> SyncReport:
        return await self.cancellation_sync.send_cancellations()

    async def take_order(self, order: dict[str, Any]) -> SyncReport:
        return await self.order_sync.take_order(order)

    async def confirm_shipments(self) -> SyncReport:
        return await self.shipment_sync.confirm_shipments()

    async def push_listings(self) -> SyncReport:
        return await self.listing_sync.push_listings()

    async def track_submissions(self) -> SyncReport:
        """Listings feeds and cancellation feeds, each to its processing report."""
        return _merged(
            await self.listing_sync.track_submissions(),
            await self.cancellation_sync.track_cancellations(),
        )

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
            report = _merged(report, await step())
        return report


def _merged(report: SyncReport, done: SyncReport) -> SyncReport:
    for name, value in vars(done).items():
        setattr(report, name, getattr(report, name) + value)
    return report


def _figures(report: SyncReport) -> dict[str, int]:
    figures = {k: v for k, v in vars(report).items() if isinstance(v, int)}
    figures["exceptions"] = len(report.exceptions)
    return figures
