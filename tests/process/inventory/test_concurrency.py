"""Concurrent reservations, each in its own transaction: never beyond on-hand, never a deadlock."""

from __future__ import annotations

import asyncio
import random

from gateway_infra.unit_of_work import Store
from process_api.inventory import Shortfall, reserve_lines
from tests.process.inventory.support import pos, reservation_rows, stock


async def reserve_in_own_transaction(
    store: Store, channel_order_id: str, lines: list[tuple[str, str, int]]
) -> list[Shortfall]:
    return await store.write(
        lambda uow: reserve_lines(
            uow,
            order_id=f"ord_{channel_order_id}",
            channel="webshop",
            channel_order_id=channel_order_id,
            lines=lines,
            expires_at=None,
        )
    )


async def test_twenty_orders_racing_for_the_last_five_units_get_exactly_five(
    store: Store,
) -> None:
    stock(store, {"MUG": 5})

    results = await asyncio.gather(
        *(reserve_in_own_transaction(store, f"R-{n}", [("1", "MUG", 1)]) for n in range(20))
    )

    assert sum(1 for shortfalls in results if not shortfalls) == 5
    assert all(s == [Shortfall("1", "MUG", 1, 0)] for s in results if s)
    assert (pos(store, "MUG").on_hand, pos(store, "MUG").reserved) == (5, 5)
    assert len(reservation_rows(store)) == 5


async def test_orders_naming_the_same_skus_in_any_order_do_not_deadlock(store: Store) -> None:
    skus = ["A", "B", "C", "D"]
    stock(store, dict.fromkeys(skus, 12))
    rng = random.Random(7)
    orders = []
    for n in range(20):
        lines = [(str(i), sku, 1) for i, sku in enumerate(rng.sample(skus, k=len(skus)))]
        orders.append(reserve_in_own_transaction(store, f"S-{n}", lines))

    results = await asyncio.gather(*orders)

    assert sum(1 for shortfalls in results if not shortfalls) == 12
    assert all(pos(store, sku).reserved == 12 for sku in skus)


async def test_the_same_order_reserved_concurrently_is_reserved_once(store: Store) -> None:
    stock(store, {"MUG": 10})

    results = await asyncio.gather(
        *(reserve_in_own_transaction(store, "T-1", [("1", "MUG", 3)]) for _ in range(8))
    )

    assert results == [[]] * 8
    assert pos(store, "MUG").reserved == 3
    assert len(reservation_rows(store)) == 1
