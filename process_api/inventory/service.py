"""Inventory governance for callers outside a unit of work: each call is one transaction.

With a profile source, every stock change is followed by the publication of what it changed, in
a transaction of its own (publishers take turns; the stock change need not wait for them).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import Connection

from contracts import ChannelAvailability
from contracts.channel import ChannelProfile
from gateway_infra.scheduler import DueTimer, Recurring, RetryPolicy, Scheduler
from gateway_infra.single_flight import SingleFlight
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.exceptions import StepSupervisor
from process_api.inventory import channel_view, publication
from process_api.inventory import repository as repo
from process_api.inventory.models import (
    EXPIRY_TIMER,
    Consumption,
    Position,
    Publication,
    Shortfall,
)
from process_api.inventory.read_cache import AvailabilityReadCache

ProfileSource = Callable[[Connection], Mapping[str, ChannelProfile]]
"""Reads the channel profiles, keyed by channel code, in the caller's transaction."""

SWEEP_TIMER = "inventory.publication_sweep"
EXPIRE_BATCH = 1000
SWEEP_RETRY = RetryPolicy(
    max_attempts=20, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=5)
)


class InventoryService:
    """Reservations, WMS counts and availability publication, one transaction per call."""

    def __init__(
        self,
        store: Store,
        *,
        profiles: ProfileSource | None = None,
        read_cache_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.profiles = profiles
        self.read_cache = AvailabilityReadCache(read_cache_seconds)
        self._reading: SingleFlight[tuple[str, tuple[str, ...], int], list[ChannelAvailability]] = (
            SingleFlight()
        )

    def register_timers(self, scheduler: Scheduler) -> None:
        # Inventory sync is critical: an expiry that still fails after its retries is an exception.
        sync = StepSupervisor(self.store, workflow="inventory_sync")
        sync.register(scheduler, EXPIRY_TIMER, self._on_expiry_timer)

    async def _on_expiry_timer(self, timer: DueTimer) -> None:
        order_id = str(timer.payload["order_id"])
        await self.expire_order(order_id)

    # ------------------------------------------------------------ stock changes

    async def reserve(
        self,
        *,
        order_id: str,
        channel: str,
        channel_order_id: str,
        lines: Sequence[tuple[str, str, int]],
        expires_at: datetime | None = None,
    ) -> list[Shortfall]:
        """reserve_lines in a transaction of its own (order intake calls reserve_lines itself)."""
        shortfalls = await self.store.write(
            lambda uow: repo.reserve_lines(
                uow,
                order_id=order_id,
                channel=channel,
                channel_order_id=channel_order_id,
                lines=lines,
                expires_at=expires_at,
            )
        )
        if not shortfalls:
            await self._publish_after({sku for _, sku, _ in lines})
        return shortfalls

    async def release_order(self, order_id: str, reason: str) -> int:
        def release(uow: UnitOfWork) -> tuple[int, list[str]]:
            return repo.release_order(uow, order_id, reason), repo.order_skus(uow.conn, order_id)

        released, skus = await self.store.write(release)
        if released:
            await self._publish_after(skus)
        return released

    async def expire_order(self, order_id: str) -> int:
        def expire(uow: UnitOfWork) -> tuple[int, list[str]]:
            return repo.expire_order(uow, order_id), repo.order_skus(uow.conn, order_id)

        expired, skus = await self.store.write(expire)
        if expired:
            await self._publish_after(skus)
        return expired

    async def expire_due(self, *, limit: int = EXPIRE_BATCH) -> int:
        def expire(uow: UnitOfWork) -> tuple[int, list[str]]:
            skus = repo.due_skus(uow.conn, uow.now)
            return repo.expire_due(uow, limit=limit), skus

        expired, skus = await self.store.write(expire)
        if expired:
            await self._publish_after(skus)
        return expired

    async def set_expiry(self, order_id: str, expires_at: datetime | None) -> int:
        return await self.store.write(lambda uow: repo.set_expiry(uow, order_id, expires_at))

    async def consume(self, order_id: str, line_id: str, quantity: int) -> Consumption:
        consumption = await self.store.write(
            lambda uow: repo.consume(uow, order_id, line_id, quantity)
        )
        await self._publish_after([consumption.sku])
        return consumption

    async def report_on_hand(self, sku: str, on_hand: int, as_of: datetime) -> Position:
        result = await self.store.write(lambda uow: repo.report_on_hand(uow, sku, on_hand, as_of))
        await self._publish_after([sku])
        return result

    async def report_on_hand_many(self, counts: Mapping[str, int], as_of: datetime) -> list[str]:
        changed = await self.store.write(lambda uow: repo.report_on_hand_many(uow, counts, as_of))
        await self._publish_after(changed)
        return changed

    async def sweep(self) -> Publication:
        """Release every reservation past its expiry, then publish every value that differs
        from the last one sent. Repairs what a crash between a stock change and its
        publication, or a missed expiry timer, left undone; a no-op when all is in sync."""
        while await self.expire_due() == EXPIRE_BATCH:
            pass
        if self.profiles is None:
            return Publication()
        return await self.publish_changes()

    def sweep_job(self, every: timedelta) -> Recurring:
        """The recurring full sweep, for the scheduler."""
        return Recurring(self.store, SWEEP_TIMER, every, self._sweep_round, retry=SWEEP_RETRY)

    async def _sweep_round(self) -> None:
        await self.sweep()

    async def republish_channel(self, profile: ChannelProfile) -> Publication:
        """A channel's profile changed: publish whatever its new policy changes, for that
        channel only."""
        return await self.publish_changes(profiles={profile.channel: profile})

    # ------------------------------------------------------------ reading

    async def position(self, sku: str) -> Position:
        return await self.store.read(lambda conn: repo.position(conn, sku))

    async def availability(self, sku: str) -> dict[str, int]:
        """Available-to-sell of the SKU per channel, as it would be published now."""

        def compute(conn: Connection) -> dict[str, int]:
            profiles = self._require_profiles(conn, None)
            held = repo.position(conn, sku)
            return {
                channel: publication.available_to_sell(
                    held.on_hand, held.reserved, profile.availability
                )
                for channel, profile in sorted(profiles.items())
            }

        return await self.store.read(compute)

    async def channel_availability(
        self, channel: str, skus: Sequence[str]
    ) -> list[ChannelAvailability]:
        """InventoryPort.channel_availability: the channel's policy on the current positions and
        the last value published to it, read in one transaction; answered from the read cache
        while no write of this process has ended since and the answer is young enough."""
        generation = self.store.database.write_generation
        cached = self.read_cache.get(channel, skus, generation)
        if cached is not None:
            return cached
        if not self.read_cache.enabled:
            return await self._read_availability(channel, skus, generation)
        # Requests missing the same answer at once share one read (a write ending makes every
        # request in flight miss together).
        return await self._reading.run(
            (channel, tuple(dict.fromkeys(skus)), generation),
            lambda: self._read_availability(channel, skus, generation),
        )

    async def _read_availability(
        self, channel: str, skus: Sequence[str], generation: int
    ) -> list[ChannelAvailability]:
        now = self.store.clock.now()
        read_at = time.monotonic()

        def compute(conn: Connection) -> list[ChannelAvailability]:
            profile = self._require_profiles(conn, None).get(channel)
            policy = None if profile is None else profile.availability
            return channel_view.channel_availability(conn, channel, policy, skus, now)

        answer = await self.store.read(compute)
        self.read_cache.put(answer, generation, read_at)
        return answer

    # ------------------------------------------------------------ publication

    async def publish_changes(
        self,
        *,
        skus: Iterable[str] | None = None,
        profiles: Mapping[str, ChannelProfile] | None = None,
    ) -> Publication:
        """Publish what changed, with the given profiles or those of the profile source."""
        chosen = None if skus is None else sorted(set(skus))
        return await self.store.write(
            lambda uow: publication.publish_changes(
                uow, profiles=self._require_profiles(uow.conn, profiles), skus=chosen
            )
        )

    def publish_changes_in(self, uow: UnitOfWork, skus: Iterable[str]) -> Publication:
        """publish_changes of the profile source's profiles, inside the caller's unit of work
        (its values and events commit, or roll back, with the caller's writes)."""
        return publication.publish_changes(
            uow, profiles=self._require_profiles(uow.conn, None), skus=sorted(set(skus))
        )

    async def confirm_publication(
        self, channel: str, skus: Iterable[str], confirmed_at: datetime
    ) -> int:
        chosen = sorted(set(skus))
        return await self.store.write(
            lambda uow: publication.confirm_publication(uow, channel, chosen, confirmed_at)
        )

    async def sync_lag(self, channel: str) -> timedelta | None:
        now = self.store.clock.now()
        return await self.store.read(lambda conn: publication.sync_lag(conn, channel, now))

    async def _publish_after(self, skus: Iterable[str]) -> None:
        chosen = sorted(set(skus))
        if self.profiles is not None and chosen:
            await self.publish_changes(skus=chosen)

    def _require_profiles(
        self, conn: Connection, profiles: Mapping[str, ChannelProfile] | None
    ) -> Mapping[str, ChannelProfile]:
        if profiles is not None:
            return profiles
        if self.profiles is None:
            raise ValueError("no channel profiles: pass them or give the service a profile source")
        return self.profiles(conn)
