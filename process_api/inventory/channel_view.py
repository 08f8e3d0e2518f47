"""Availability as one channel sees it: its policy applied to the positions, beside what was
last published to it. Runs inside the caller's read transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from contracts import ChannelAvailability
from contracts.channel import AvailabilityPolicy
from process_api.inventory.publication import available_to_sell
from process_api.inventory.repository import chunked
from process_api.tables import inventory_positions as positions
from process_api.tables import published_availability as published

__all__ = ["channel_availability"]


def channel_availability(
    conn: Connection,
    channel: str,
    policy: AvailabilityPolicy | None,
    skus: Sequence[str],
    now: datetime,
) -> list[ChannelAvailability]:
    """One entry per distinct SKU, in the order given; see InventoryPort.channel_availability.

    Without a policy (the channel has no profile) every SKU is 0: nothing is offered to it.
    """
    wanted = list(dict.fromkeys(skus))
    stock: dict[str, tuple[int, int]] = {}
    sent: dict[str, tuple[int, datetime]] = {}
    for chunk in chunked(sorted(wanted)):
        stock.update(
            (row.sku, (row.on_hand, row.reserved))
            for row in conn.execute(
                select(positions.c.sku, positions.c.on_hand, positions.c.reserved).where(
                    positions.c.sku.in_(chunk)
                )
            )
        )
        sent.update(
            (row.sku, (row.quantity, row.published_at))
            for row in conn.execute(
                select(published.c.sku, published.c.quantity, published.c.published_at).where(
                    published.c.channel == channel, published.c.sku.in_(chunk)
                )
            )
        )
    result: list[ChannelAvailability] = []
    for sku in wanted:
        on_hand, reserved = stock.get(sku, (0, 0))
        last = sent.get(sku)
        result.append(
            ChannelAvailability(
                sku=sku,
                channel=channel,
                available=0 if policy is None else available_to_sell(on_hand, reserved, policy),
                as_of=now,
                published_quantity=None if last is None else last[0],
                published_at=None if last is None else last[1],
            )
        )
    return result
