"""Availability publication: per channel, only the SKUs whose published value changed.

The last absolute value sent to each channel is kept with when it was sent and when the channel
confirmed it; the oldest unconfirmed value gives the channel's sync lag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import compress, repeat
from typing import Any, TypeAlias

from sqlalchemy import Connection, Executable, bindparam, func, select, text, update

from contracts.channel import AvailabilityPolicy, ChannelProfile
from gateway_infra.bulk import driver_value, insert_rows
from gateway_infra.unit_of_work import UnitOfWork
from process_api.inventory.models import SOURCE, Publication
from process_api.inventory.repository import CHUNK, chunked
from process_api.tables import inventory_positions as positions
from process_api.tables import published_availability as published

__all__ = [
    "AVAILABILITY_CHANGED",
    "available_to_sell",
    "confirm_publication",
    "publish_changes",
    "sync_lag",
]

AVAILABILITY_CHANGED = "availability.changed"
# One publisher at a time per SKU on PostgreSQL (transaction-scoped advisory locks): two
# publishers reading a position at different moments could otherwise leave the older value
# published. A publication of a few SKUs (an order's, a count's) shares the publication lock and
# takes a lock per SKU, so publications of other SKUs (other orders' intakes, on any replica) go
# on meanwhile; a sweep or a publication of many SKUs takes the publication lock alone.
_PUBLICATION_LOCK = 0x1A7E_1B1E
_SKU_LOCK_SPACE = 0x1A7E
"""First key of the per-SKU locks (two int4 keys: apart from the single-key locks)."""
_SKU_LOCKS_AT_MOST = 16
"""SKUs a publication locks one by one at most. Each lock is an entry of the server's shared lock
table (max_locks_per_transaction x connections), so orders of many lines lock all SKUs instead."""
_NOTHING: dict[str, int] = {}
_REMEMBERED_PAIRS = 10_000
_json_string = json.encoder.encode_basestring_ascii

# Built once: an order's intake runs these for its few SKUs, where building a statement cost
# about as much as running it.
_LOCK_PUBLISHERS = text("SELECT pg_advisory_xact_lock(:key)")
_SHARE_PUBLISHERS = text("SELECT pg_advisory_xact_lock_shared(:key)")
# Taken in key order (volatile functions of the select list run after the sort): two
# publishers never wait for each other's locks in opposite orders.
_LOCK_SKUS = text(
    "SELECT pg_advisory_xact_lock(:space, k) FROM unnest(CAST(:keys AS integer[])) AS k ORDER BY k"
)
_CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")
_STOCK = (positions.c.sku, positions.c.on_hand, positions.c.reserved)
_STOCK_OF = select(*_STOCK).where(positions.c.sku.in_(bindparam("b_skus", expanding=True)))
_STOCK_FIRST = select(*_STOCK).order_by(positions.c.sku).limit(CHUNK)
_STOCK_AFTER = _STOCK_FIRST.where(positions.c.sku > bindparam("b_after"))
_SENT = select(published.c.channel, published.c.sku, published.c.quantity).where(
    published.c.channel.in_(bindparam("b_channels", expanding=True))
)
_SENT_OF = _SENT.where(published.c.sku.in_(bindparam("b_skus", expanding=True)))
_SENT_BETWEEN = _SENT.where(published.c.sku.between(bindparam("b_first"), bindparam("b_last")))
_UPDATE_SENT = (
    update(published)
    .where(published.c.channel == bindparam("k_channel"), published.c.sku == bindparam("k_sku"))
    .values(
        quantity=bindparam("k_quantity"),
        event_id=bindparam("k_id"),
        published_at=bindparam("k_now"),
        confirmed_at=None,
    )
)


def available_to_sell(on_hand: int, reserved: int, policy: AvailabilityPolicy) -> int:
    """What a channel may sell of one SKU: 0 whenever the warehouse holds less than is reserved."""
    if on_hand < reserved:
        return 0
    return policy.available(on_hand, reserved)


def publish_changes(
    uow: UnitOfWork,
    *,
    profiles: Mapping[str, ChannelProfile],
    skus: Iterable[str] | None = None,
) -> Publication:
    """Publish, for every channel, the SKUs whose available-to-sell differs from the last value
    sent (or that were never sent), one availability.changed event per (channel, SKU).

    skus=None goes through every position. A SKU with neither a position nor a value published
    to the channel is left alone.
    """
    sent = Publication()
    if not profiles:
        return sent
    conn = uow.conn
    chosen = None if skus is None else sorted(set(skus))
    if chosen == []:
        return sent
    if conn.dialect.name == "postgresql":
        _lock_publication(conn, chosen)
        # Long IN lists in a generic (prepared) plan are searched linearly row by row, and
        # without statistics PostgreSQL misjudges them: plan each statement for its values.
        conn.execute(_CUSTOM_PLANS)
    channels = sorted(profiles)
    policies = [profiles[channel].availability for channel in channels]
    channel_texts = [(channel, json.dumps(channel)) for channel in channels]
    # Most SKUs share a few (on hand, reserved) pairs: each pair's values are worked out once.
    values_of: dict[tuple[int, int], list[int]] = {}
    for chunk, stock, (sent_in_chunk, chunk_params) in _chunks_with_stock(conn, chosen):
        last: dict[str, dict[str, int]] = {}
        for channel, sku, quantity in conn.execute(
            sent_in_chunk, {"b_channels": channels, **chunk_params}
        ):
            last.setdefault(sku, {})[channel] = quantity
        # The chunk's values sent, column by column (no object or tuple per value).
        to_channels: list[str] = []
        to_skus: list[str] = []
        quantities: list[int] = []
        previous_values: list[int | None] = []
        subjects: list[str] = []
        payloads: list[str] = []
        for sku in chunk:
            held = stock.get(sku)
            before = last.get(sku, _NOTHING)
            if held is None and not before:
                continue
            pair = held or (0, 0)
            values = values_of.get(pair)
            if values is None:
                if len(values_of) >= _REMEMBERED_PAIRS:
                    values_of.clear()
                values = values_of[pair] = [
                    available_to_sell(pair[0], pair[1], policy) for policy in policies
                ]
            sku_text = _json_string(sku)
            for (channel, channel_text), quantity in zip(channel_texts, values, strict=True):
                previous = before.get(channel)
                if previous == quantity or (held is None and previous is None):
                    continue
                to_channels.append(channel)
                to_skus.append(sku)
                quantities.append(quantity)
                previous_values.append(previous)
                subjects.append(f"availability/{channel}/{sku}")
                payloads.append(
                    f'{{"sku": {sku_text}, "channel": {channel_text}, "quantity": {quantity},'
                    f' "previous": {"null" if previous is None else previous}}}'
                )
        if not subjects:
            continue
        ids = uow.emit_many(
            AVAILABILITY_CHANGED,
            source=SOURCE,
            subjects=subjects,
            channels=to_channels,
            data=payloads,
        )
        _store(uow, to_channels, to_skus, quantities, previous_values, ids)
        sent.extend(to_channels, to_skus, quantities, previous_values, ids)
    return sent


_ChunkSent: TypeAlias = "tuple[Executable, dict[str, Any]]"
"""The statement that reads a chunk's published values (given b_channels) and its parameters."""


def _lock_publication(conn: Connection, skus: Sequence[str] | None) -> None:
    """Wait until no other publisher works on these SKUs (all SKUs when None) and keep them
    until this transaction ends (see _PUBLICATION_LOCK)."""
    if skus is None or len(skus) > _SKU_LOCKS_AT_MOST:
        conn.execute(_LOCK_PUBLISHERS, {"key": _PUBLICATION_LOCK})
        return
    conn.execute(_SHARE_PUBLISHERS, {"key": _PUBLICATION_LOCK})
    keys = sorted({_sku_lock_key(sku) for sku in skus})
    conn.execute(_LOCK_SKUS, {"space": _SKU_LOCK_SPACE, "keys": keys})


def _sku_lock_key(sku: str) -> int:
    """The SKU's lock key: a signed 32-bit integer of its hash (SKUs that share one only wait
    for each other more often)."""
    return int.from_bytes(hashlib.blake2b(sku.encode(), digest_size=4).digest(), signed=True)


def _chunks_with_stock(
    conn: Connection, skus: Sequence[str] | None
) -> Iterator[tuple[Sequence[str], dict[str, tuple[int, int]], _ChunkSent]]:
    """SKUs (sorted, distinct) in chunks, each with {sku: (on_hand, reserved)} of those that have
    a position and how to read the chunk's published rows."""
    if skus is not None:
        for chunk in chunked(skus):
            found = conn.execute(_STOCK_OF, {"b_skus": chunk})
            stock = {sku: (on_hand, reserved) for sku, on_hand, reserved in found}
            yield chunk, stock, (_SENT_OF, {"b_skus": chunk})
        return
    after: str | None = None
    while True:
        if after is None:
            rows = conn.execute(_STOCK_FIRST).all()
        else:
            rows = conn.execute(_STOCK_AFTER, {"b_after": after}).all()
        if not rows:
            return
        stock = {sku: (on_hand, reserved) for sku, on_hand, reserved in rows}
        chunk = list(stock)
        # A sweep's chunk is a run of consecutive SKUs: a range reads its published rows.
        yield chunk, stock, (_SENT_BETWEEN, {"b_first": chunk[0], "b_last": chunk[-1]})
        after = chunk[-1]


def _store(
    uow: UnitOfWork,
    channels: list[str],
    skus: list[str],
    quantities: list[int],
    previous_values: list[int | None],
    ids: list[str],
) -> None:
    """Keep the values sent: a row for a (channel, SKU) sent the first time, else its update."""
    conn, now = uow.conn, uow.now
    first = [previous is None for previous in previous_values]
    insert_rows(
        conn,
        published,
        ("channel", "sku", "quantity", "event_id", "published_at"),
        compress(
            zip(
                channels,
                skus,
                quantities,
                ids,
                repeat(driver_value(conn, published.c.published_at, now)),
            ),
            first,
        ),
    )
    changed = [
        {"k_channel": channel, "k_sku": sku, "k_quantity": quantity, "k_id": event_id, "k_now": now}
        for channel, sku, quantity, event_id, is_first in zip(
            channels, skus, quantities, ids, first, strict=True
        )
        if not is_first
    ]
    if changed:
        conn.execute(_UPDATE_SENT, changed)


def confirm_publication(
    uow: UnitOfWork, channel: str, skus: Iterable[str], confirmed_at: datetime
) -> int:
    """The channel took the values of these SKUs published at or before confirmed_at; returns
    how many values it confirms (a value published later stays unconfirmed)."""
    confirmed = 0
    for chunk in chunked(sorted(set(skus))):
        result = uow.conn.execute(
            update(published)
            .where(
                published.c.channel == channel,
                published.c.sku.in_(chunk),
                published.c.published_at <= confirmed_at,
                published.c.confirmed_at.is_(None),
            )
            .values(confirmed_at=confirmed_at)
        )
        confirmed += result.rowcount
    return confirmed


def sync_lag(conn: Connection, channel: str, now: datetime) -> timedelta | None:
    """How long the channel's oldest unconfirmed value has waited; None when all are confirmed."""
    oldest: datetime | None = conn.execute(
        select(func.min(published.c.published_at)).where(
            published.c.channel == channel, published.c.confirmed_at.is_(None)
        )
    ).scalar_one()
    return None if oldest is None else now - oldest
