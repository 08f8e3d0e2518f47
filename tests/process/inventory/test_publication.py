"""Availability publication: per channel policy, only changed values, confirmations and lag."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import insert

from contracts import EventEnvelope
from gateway_infra.clock import ManualClock
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api.inventory import (
    Publication,
    Published,
    confirm_publication,
    publish_changes,
    sync_lag,
)
from process_api.tables import inventory_positions
from tests.process.inventory.support import (
    events,
    outbox_count,
    profile,
    profiles,
    publish,
    reserve,
    stock,
)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({}, 17),
        ({"mode": "ring_fenced", "ring_fenced_quantity": 5}, 5),
        ({"mode": "ring_fenced", "ring_fenced_quantity": 50}, 17),
        ({"mode": "percentage", "percentage": 30}, 5),
        ({"cap": 10}, 10),
        ({"floor": 18}, 0),
        ({"floor": 17}, 17),
        ({"safety_stock": 4}, 13),
        ({"buffer": 2}, 15),
        ({"safety_stock": 4, "buffer": 2, "mode": "percentage", "percentage": 50, "cap": 4}, 4),
        ({"safety_stock": 4, "buffer": 2, "floor": 12}, 0),
        ({"safety_stock": 20}, 0),
    ],
)
async def test_each_channel_policy_sets_what_is_published(
    store: Store, policy: dict[str, Any], expected: int
) -> None:
    stock(store, {"MUG": 20})
    reserve(store, "P-1", ("1", "MUG", 3))

    [published] = publish(store, profiles(profile("shop", **policy)))

    assert (published.channel, published.sku, published.quantity) == ("shop", "MUG", expected)
    assert published.previous is None


async def test_a_change_publishes_an_absolute_value_event_per_channel(store: Store) -> None:
    channels = profiles(profile("webshop"), profile("amazon", buffer=2))
    stock(store, {"MUG": 10, "PLATE": 4})
    publish(store, channels)

    reserve(store, "P-2", ("1", "MUG", 3))
    changes = publish(store, channels)

    assert sorted((p.channel, p.sku, p.quantity, p.previous) for p in changes) == [
        ("amazon", "MUG", 5, 8),
        ("webshop", "MUG", 7, 10),
    ]
    latest = {e["channel"]: e for e in events(store, "availability.changed")[-2:]}
    assert latest["amazon"]["subject"] == "availability/amazon/MUG"
    assert latest["amazon"]["data"] == {
        "sku": "MUG",
        "channel": "amazon",
        "quantity": 5,
        "previous": 8,
    }
    assert {str(latest[p.channel]["id"]) for p in changes} == {p.event_id for p in changes}


async def test_each_published_value_is_stored_as_the_event_envelope_model_dumps_it(
    store: Store, clock: ManualClock
) -> None:
    channels = profiles(profile("webshop"), profile("amazon", buffer=2))
    odd = 'MUG "Caf\u00e9" \\ 1/2'
    stock(store, {"MUG": 10, odd: 4})
    publish(store, channels)
    stock(store, {"MUG": 6}, clock.now() + timedelta(seconds=1))
    changes = publish(store, channels)

    stored = events(store, "availability.changed")
    assert len(stored) == 6
    assert [e["data"]["sku"] for e in stored[-2:]] == ["MUG", "MUG"]
    for envelope in stored:
        data = envelope["data"]
        assert envelope == EventEnvelope(
            id=UUID(envelope["id"]),
            type="availability.changed",
            occurred_at=envelope["occurred_at"],
            source="process_api.inventory",
            subject=f"availability/{data['channel']}/{data['sku']}",
            channel=data["channel"],
            data={
                "sku": data["sku"],
                "channel": data["channel"],
                "quantity": data["quantity"],
                "previous": data["previous"],
            },
        ).model_dump(mode="json")
    assert {e["data"]["sku"] for e in stored[:4]} == {"MUG", odd}
    assert [(e["id"], e["data"]["quantity"], e["data"]["previous"]) for e in stored[-2:]] == [
        (p.event_id, p.quantity, p.previous) for p in changes
    ]


async def test_nothing_is_published_when_no_value_changed(store: Store) -> None:
    channels = profiles(profile("webshop", cap=5), profile("amazon", cap=8, floor=3))
    stock(store, {"MUG": 10, "CUP": 2})
    publish(store, channels)
    before = outbox_count(store)

    stock(store, {"MUG": 11, "CUP": 1})  # above the cap, below the floor
    changes = publish(store, channels)

    assert [(p.channel, p.sku, p.quantity) for p in changes] == [("webshop", "CUP", 1)]
    assert outbox_count(store) == before + 1
    assert publish(store, channels) == []
    assert outbox_count(store) == before + 1


async def test_a_sku_never_stocked_nor_published_is_left_alone(store: Store) -> None:
    assert publish(store, profiles(profile("webshop")), ["GHOST"]) == []


async def test_confirmations_measure_each_channels_sync_lag(
    store: Store, clock: ManualClock
) -> None:
    channels = profiles(profile("webshop"), profile("amazon"))
    stock(store, {"MUG": 10, "PLATE": 4})
    first_sent = clock.now()
    publish(store, channels)
    assert store.database.run_read(lambda c: sync_lag(c, "amazon", clock.now())) == timedelta(0)

    clock.advance(timedelta(minutes=5))
    stock(store, {"MUG": 9})
    second_sent = clock.now()
    publish(store, channels)
    clock.advance(timedelta(minutes=10))

    def lag(channel: str) -> timedelta | None:
        return store.database.run_read(lambda c: sync_lag(c, channel, clock.now()))

    assert lag("amazon") == timedelta(minutes=15)
    confirmed = store.write_sync(
        lambda uow: confirm_publication(uow, "amazon", ["MUG", "PLATE"], first_sent)
    )
    # PLATE's value is confirmed; MUG's newer value was published after that confirmation.
    assert confirmed == 1
    assert lag("amazon") == timedelta(minutes=10)
    store.write_sync(lambda uow: confirm_publication(uow, "amazon", ["MUG"], second_sent))
    assert lag("amazon") is None
    assert lag("webshop") == timedelta(minutes=15)


ONE_CHANGE_CHANNELS = profiles(
    profile("webshop", cap=50),
    profile("amazon", mode="percentage", percentage=50, cap=20),
    profile("walmart", mode="ring_fenced", ring_fenced_quantity=10),
)


def _pairs(changes: Sequence[Published]) -> set[tuple[str, str, int]]:
    return {(p.sku, p.channel, p.quantity) for p in changes}


async def test_one_stock_change_among_1000_skus_emits_exactly_the_affected_pairs(
    store: Store,
) -> None:
    skus = [f"SKU-{n:04d}" for n in range(1000)]
    stock(store, dict.fromkeys(skus, 100))
    assert len(publish(store, ONE_CHANGE_CHANNELS)) == 3000

    stock(store, {"SKU-0042": 8})
    by_sku = publish(store, ONE_CHANGE_CHANNELS, ["SKU-0042"])
    stock(store, {"SKU-0500": 8})
    by_sweep = publish(store, ONE_CHANGE_CHANNELS)

    expected = {("webshop", 8), ("amazon", 4), ("walmart", 8)}
    assert _pairs(by_sku) == {("SKU-0042", c, q) for c, q in expected}
    assert _pairs(by_sweep) == {("SKU-0500", c, q) for c, q in expected}

    # 100 -> 30: webshop and amazon change; walmart's ring-fence of 10 hides it.
    stock(store, {"SKU-0007": 30})
    assert _pairs(publish(store, ONE_CHANGE_CHANNELS)) == {
        ("SKU-0007", "webshop", 30),
        ("SKU-0007", "amazon", 15),
    }

    # 100 -> 120: above every cap and ring-fence: no published value changes.
    before = outbox_count(store)
    stock(store, {"SKU-0077": 120})
    assert publish(store, ONE_CHANGE_CHANNELS, ["SKU-0077"]) == []
    assert publish(store, ONE_CHANGE_CHANNELS) == []
    assert outbox_count(store) == before


@pytest.mark.slow
async def test_full_publication_of_10000_skus_to_6_channels(
    store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    now = store.clock.now()
    rows = [
        {
            "sku": f"SKU-{n:05d}",
            "on_hand": n % 40,
            "reserved": n % 7 % (n % 40 + 1),
            "updated_at": now,
        }
        for n in range(10_000)
    ]
    store.database.run_write(lambda conn: conn.execute(insert(inventory_positions), rows))
    channels = profiles(
        profile("webshop"),
        profile("amazon", buffer=2),
        profile("walmart", mode="percentage", percentage=50),
        profile("ebay", cap=10),
        profile("zalando", mode="ring_fenced", ring_fenced_quantity=5),
        profile("otto", safety_stock=3, floor=2),
    )

    inside: dict[str, float] = {}

    def timed_publication(uow: UnitOfWork) -> Publication:
        started = time.perf_counter()
        changes = publish_changes(uow, profiles=channels)
        inside["publish_changes"] = time.perf_counter() - started
        return changes

    started = time.perf_counter()
    changes = store.write_sync(timed_publication)
    full = time.perf_counter() - started
    started = time.perf_counter()
    again = publish(store, channels)
    unchanged = time.perf_counter() - started

    assert len(changes) == 60_000
    assert again == []
    with capsys.disabled():
        print(
            f"\n[{store.database.url.get_backend_name()}] 10,000 SKUs x 6 channels: first"
            f" publication {full:.2f} s for 60,000 events (publish_changes"
            f" {inside['publish_changes']:.2f} s, outbox insert and commit"
            f" {full - inside['publish_changes']:.2f} s); unchanged sweep {unchanged:.2f} s"
        )
