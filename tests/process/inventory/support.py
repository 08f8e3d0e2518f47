"""Builders and readers shared by the inventory tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select

from contracts.channel import AvailabilityPolicy, ChannelProfile
from gateway_infra.outbox import ENVELOPE_COLUMNS, envelope_of
from gateway_infra.tables import outbox, timers
from gateway_infra.unit_of_work import Store
from process_api.inventory import (
    Position,
    Publication,
    Shortfall,
    position,
    publish_changes,
    report_on_hand_many,
    reserve_lines,
)
from process_api.tables import inventory_positions, published_availability, reservations

CHANNEL = "webshop"


def profile(channel: str, **policy: Any) -> ChannelProfile:
    return ChannelProfile(
        channel=channel,
        name=f"Channel {channel}",
        currency="EUR",
        availability=AvailabilityPolicy(**policy),
    )


def profiles(*items: ChannelProfile) -> dict[str, ChannelProfile]:
    return {p.channel: p for p in items}


def stock(store: Store, counts: Mapping[str, int], as_of: datetime | None = None) -> list[str]:
    """The WMS reports these on-hand counts (as of now unless told)."""
    at = as_of or store.clock.now()
    return store.write_sync(lambda uow: report_on_hand_many(uow, counts, at))


def reserve(
    store: Store,
    channel_order_id: str,
    *lines: tuple[str, str, int],
    channel: str = CHANNEL,
    expires_at: datetime | None = None,
) -> list[Shortfall]:
    return store.write_sync(
        lambda uow: reserve_lines(
            uow,
            order_id=order_id(channel_order_id),
            channel=channel,
            channel_order_id=channel_order_id,
            lines=lines,
            expires_at=expires_at,
        )
    )


def order_id(channel_order_id: str) -> str:
    return f"ord_{channel_order_id}"


def publish(
    store: Store, channel_profiles: Mapping[str, ChannelProfile], skus: Sequence[str] | None = None
) -> Publication:
    return store.write_sync(lambda uow: publish_changes(uow, profiles=channel_profiles, skus=skus))


def pos(store: Store, sku: str) -> Position:
    return store.database.run_read(lambda conn: position(conn, sku))


def reservation_rows(store: Store, order: str | None = None) -> list[Any]:
    query = select(reservations).order_by(reservations.c.id)
    if order is not None:
        query = query.where(reservations.c.order_id == order_id(order))
    return list(store.database.run_read(lambda conn: conn.execute(query).all()))


def events(store: Store, type: str) -> list[dict[str, Any]]:
    """The outbox envelopes of one event type, oldest first."""

    def read(conn: Connection) -> list[dict[str, Any]]:
        rows = conn.execute(
            select(*ENVELOPE_COLUMNS).where(outbox.c.type == type).order_by(outbox.c.id)
        )
        return [envelope_of(row) or {} for row in rows]

    return store.database.run_read(read)


def outbox_count(store: Store) -> int:
    count: int = store.database.run_read(
        lambda conn: conn.execute(select(func.count()).select_from(outbox)).scalar_one()
    )
    return count


def timer_keys(store: Store, kind: str) -> list[str]:
    return list(
        store.database.run_read(
            lambda conn: conn.execute(select(timers.c.key).where(timers.c.kind == kind)).scalars()
        )
    )


def reset(store: Store) -> None:
    """Empty every table the inventory tests write (between hypothesis examples)."""

    def wipe(conn: Connection) -> None:
        for table in (reservations, inventory_positions, published_availability, outbox, timers):
            conn.execute(delete(table))

    store.database.run_write(wipe)
