"""Partner availability answers reused for a short time: never past a write of this process,
never older than the configured age, so another replica's change shows within that age."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

from contracts import ChannelAvailability
from contracts.channel import AvailabilityPolicy, ChannelProfile
from gateway_infra.clock import ManualClock
from process_api.inventory.read_cache import AvailabilityReadCache
from tests.conftest import make_settings, start_gateway
from tests.factories import product, seed_products

MUG = "MUG-RED-350"
WEBSHOP = ChannelProfile(
    channel="webshop", name="Webshop", currency="EUR", availability=AvailabilityPolicy()
)


def entry(sku: str, available: int, clock: ManualClock) -> ChannelAvailability:
    return ChannelAvailability(
        sku=sku,
        channel="webshop",
        available=available,
        as_of=clock.now(),
        published_quantity=None,
        published_at=None,
    )


def test_an_answer_is_reused_only_at_the_generation_it_was_read_at(clock: ManualClock) -> None:
    cache = AvailabilityReadCache(60)
    cache.put([entry(MUG, 5, clock)], generation=7, read_at=time.monotonic())

    assert cache.get("webshop", [MUG], 7) == [entry(MUG, 5, clock)]
    assert cache.get("webshop", [MUG], 8) is None
    assert cache.get("marketplace", [MUG], 7) is None


def test_a_request_is_answered_from_the_cache_only_when_every_sku_is_there(
    clock: ManualClock,
) -> None:
    cache = AvailabilityReadCache(60)
    cache.put([entry("A", 1, clock), entry("B", 2, clock)], generation=1, read_at=time.monotonic())

    answer = cache.get("webshop", ["B", "A", "B"], 1)

    assert [(e.sku, e.available) for e in answer or []] == [("B", 2), ("A", 1)]
    assert cache.get("webshop", ["A", "C"], 1) is None


def test_an_answer_older_than_the_age_is_read_again(clock: ManualClock) -> None:
    cache = AvailabilityReadCache(1.0)
    cache.put([entry(MUG, 5, clock)], generation=1, read_at=time.monotonic() - 1.5)

    assert cache.get("webshop", [MUG], 1) is None


def test_the_least_recently_used_answers_go_first(clock: ManualClock) -> None:
    cache = AvailabilityReadCache(60, max_entries=2)
    now = time.monotonic()
    cache.put([entry("A", 1, clock), entry("B", 2, clock)], generation=1, read_at=now)
    cache.get("webshop", ["A"], 1)
    cache.put([entry("C", 3, clock)], generation=1, read_at=now)

    assert cache.get("webshop", ["A", "C"], 1) is not None
    assert cache.get("webshop", ["B"], 1) is None


def test_an_age_of_zero_reads_every_time(clock: ManualClock) -> None:
    cache = AvailabilityReadCache(0)
    cache.put([entry(MUG, 5, clock)], generation=1, read_at=time.monotonic())

    assert cache.get("webshop", [MUG], 1) is None


async def test_a_write_of_this_process_is_seen_by_the_next_read(
    database_url: str, clock: ManualClock
) -> None:
    gateway = start_gateway(make_settings(database_url, availability_read_cache_seconds=60), clock)
    try:
        await gateway.channels.seed([WEBSHOP], actor="test")
        seed_products(gateway, product(MUG), on_hand=10)
        first = await gateway.inventory.channel_availability("webshop", [MUG])
        again = await gateway.inventory.channel_availability("webshop", [MUG])
        await gateway.inventory.report_on_hand_many({MUG: 4}, clock.now() + timedelta(seconds=1))
        after_count = await gateway.inventory.channel_availability("webshop", [MUG])
    finally:
        await gateway.aclose()

    assert [first[0].available, again[0].available, after_count[0].available] == [10, 10, 4]
    assert again[0].as_of == first[0].as_of  # a reused answer says when it was read


async def test_another_replicas_write_is_seen_once_the_age_has_passed(
    database_url: str, clock: ManualClock
) -> None:
    settings = make_settings(database_url, availability_read_cache_seconds=0.2)
    reader = start_gateway(settings, clock)
    writer = start_gateway(settings, clock)
    try:
        await reader.channels.seed([WEBSHOP], actor="test")
        seed_products(reader, product(MUG), on_hand=10)
        before = await reader.inventory.channel_availability("webshop", [MUG])
        await writer.inventory.report_on_hand_many({MUG: 3}, clock.now() + timedelta(seconds=1))
        await asyncio.sleep(0.25)
        after_age = await reader.inventory.channel_availability("webshop", [MUG])
    finally:
        await reader.aclose()
        await writer.aclose()

    assert [before[0].available, after_age[0].available] == [10, 3]


async def test_requests_missing_the_same_answer_at_once_share_one_read(
    database_url: str, clock: ManualClock
) -> None:
    gateway = start_gateway(make_settings(database_url, availability_read_cache_seconds=60), clock)
    reads = 0
    unwrapped = gateway.store.read

    async def counted(fn: Any) -> Any:
        nonlocal reads
        reads += 1
        return await unwrapped(fn)

    try:
        await gateway.channels.seed([WEBSHOP], actor="test")
        seed_products(gateway, product(MUG), on_hand=10)
        gateway.store.read = counted  # type: ignore[method-assign]
        answers = await asyncio.gather(
            *(gateway.inventory.channel_availability("webshop", [MUG]) for _ in range(8))
        )
    finally:
        gateway.store.read = unwrapped  # type: ignore[method-assign]
        await gateway.aclose()

    assert reads == 1
    assert [answer[0].available for answer in answers] == [10] * 8
