"""SQL of the Amazon adapter: its order cursor, the Amazon orders it acted on, the packages it
confirmed, the feeds it submitted; and what the gateway published for Amazon that Amazon has
not yet confirmed (availability values and sent price changes)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select, update

from gateway_infra.database import dialect_insert, for_update
from process_api.pricing.models import PublicationState
from process_api.tables import (
    amazon_cancellations,
    amazon_feeds,
    amazon_order_cursors,
    amazon_orders,
    amazon_package_confirmations,
    orders,
    price_publications,
    published_availability,
    shipment_packages,
)

SUBMITTED = "submitted"
DONE = "done"
PARTLY_REFUSED = "partly_refused"
"""Done, with messages the report refused: their values are not sent again as they are."""
FAILED = "failed"


@dataclass(frozen=True)
class Cursor:
    updated_after: datetime
    pagination_token: str | None


def load_cursor(conn: Connection, channel: str) -> Cursor | None:
    row = conn.execute(
        select(amazon_order_cursors).where(amazon_order_cursors.c.channel == channel)
    ).first()
    return None if row is None else Cursor(row.updated_after, row.pagination_token)


def save_cursor(conn: Connection, channel: str, cursor: Cursor, now: datetime) -> None:
    values = {
        "updated_after": cursor.updated_after,
        "pagination_token": cursor.pagination_token,
        "updated_at": now,
    }
    statement = dialect_insert(conn, amazon_order_cursors).values(channel=channel, **values)
    conn.execute(statement.on_conflict_do_update(index_elements=["channel"], set_=values))


@dataclass(frozen=True)
class SeenOrder:
    order_id: str | None
    fulfillment_status: str


def seen_order(conn: Connection, channel: str, amazon_order_id: str) -> SeenOrder | None:
    row = conn.execute(
        select(amazon_orders.c.order_id, amazon_orders.c.fulfillment_status).where(
            amazon_orders.c.channel == channel,
            amazon_orders.c.amazon_order_id == amazon_order_id,
        )
    ).first()
    return None if row is None else SeenOrder(row.order_id, row.fulfillment_status)


def record_seen(
    conn: Connection,
    *,
    channel: str,
    amazon_order_id: str,
    order_id: str | None,
    status: str,
    last_updated: datetime | None,
    now: datetime,
) -> None:
    values = {
        "order_id": order_id,
        "fulfillment_status": status,
        "last_updated": last_updated,
        "seen_at": now,
    }
    statement = dialect_insert(conn, amazon_orders).values(
        channel=channel, amazon_order_id=amazon_order_id, **values
    )
    conn.execute(
        statement.on_conflict_do_update(index_elements=["channel", "amazon_order_id"], set_=values)
    )


# ---------------------------------------------------------------- shipments


@dataclass(frozen=True)
class PackageToConfirm:
    package_id: int
    order_id: str
    amazon_order_id: str
    carrier: str
    tracking_number: str
    shipped_at: datetime
    lines: list[dict[str, Any]]

    def fingerprint(self) -> str:
        """Of everything Amazon was told about the package, kept with the confirmation."""
        content = json.dumps(
            [self.carrier, self.tracking_number, self.shipped_at.isoformat(), self.lines],
            sort_keys=True,
        )
        return hashlib.sha256(content.encode()).hexdigest()


def packages_to_confirm(conn: Connection, channel: str, limit: int) -> list[PackageToConfirm]:
    """Packages of the channel's orders the warehouse confirmed and Amazon has not taken yet
    (packages never change once recorded, so one confirmation each)."""
    rows = conn.execute(
        select(
            shipment_packages.c.id,
            shipment_packages.c.order_id,
            orders.c.channel_order_id,
            shipment_packages.c.carrier,
            shipment_packages.c.tracking_number,
            shipment_packages.c.shipped_at,
            shipment_packages.c.lines,
        )
        .join(orders, orders.c.order_id == shipment_packages.c.order_id)
        .outerjoin(
            amazon_package_confirmations,
            amazon_package_confirmations.c.package_id == shipment_packages.c.id,
        )
        .where(
            orders.c.channel == channel,
            shipment_packages.c.state == "confirmed",
            amazon_package_confirmations.c.package_id.is_(None),
        )
        .order_by(shipment_packages.c.id)
        .limit(limit)
    ).all()
    return [
        PackageToConfirm(
            package_id=int(row.id),
            order_id=row.order_id,
            amazon_order_id=row.channel_order_id,
            carrier=row.carrier,
            tracking_number=row.tracking_number,
            shipped_at=row.shipped_at,
            lines=list(row.lines),
        )
        for row in rows
    ]


def record_confirmation(
    conn: Connection, package: PackageToConfirm, channel: str, now: datetime
) -> None:
    values = {"fingerprint": package.fingerprint(), "confirmed_at": now}
    statement = dialect_insert(conn, amazon_package_confirmations).values(
        package_id=package.package_id, order_id=package.order_id, channel=channel, **values
    )
    conn.execute(statement.on_conflict_do_update(index_elements=["package_id"], set_=values))


# ---------------------------------------------------------------- listings


@dataclass(frozen=True)
class UnconfirmedAvailability:
    sku: str
    quantity: int
    published_at: datetime


def unconfirmed_availability(
    conn: Connection, channel: str, limit: int
) -> list[UnconfirmedAvailability]:
    rows = conn.execute(
        select(
            published_availability.c.sku,
            published_availability.c.quantity,
            published_availability.c.published_at,
        )
        .where(
            published_availability.c.channel == channel,
            published_availability.c.confirmed_at.is_(None),
        )
        .order_by(published_availability.c.published_at, published_availability.c.sku)
        .limit(limit)
    ).all()
    return [UnconfirmedAvailability(r.sku, r.quantity, r.published_at) for r in rows]


def confirm_availability(
    conn: Connection, channel: str, sku: str, published_at: datetime, now: datetime
) -> bool:
    """Amazon took exactly this value (not a later one published meanwhile)."""
    result = conn.execute(
        update(published_availability)
        .where(
            published_availability.c.channel == channel,
            published_availability.c.sku == sku,
            published_availability.c.published_at == published_at,
            published_availability.c.confirmed_at.is_(None),
        )
        .values(confirmed_at=now)
    )
    return result.rowcount > 0


@dataclass(frozen=True)
class SentPriceChange:
    publication_id: int
    sku: str
    change: str
    data: dict[str, Any]


def sent_price_changes(conn: Connection, channel: str, limit: int) -> list[SentPriceChange]:
    rows = conn.execute(
        select(
            price_publications.c.id,
            price_publications.c.sku,
            price_publications.c.change,
            price_publications.c.data,
        )
        .where(
            price_publications.c.channel == channel,
            price_publications.c.state == PublicationState.SENT.value,
        )
        .order_by(price_publications.c.id)
        .limit(limit)
    ).all()
    return [SentPriceChange(int(r.id), r.sku, r.change, dict(r.data)) for r in rows]


def confirm_price_changes(
    conn: Connection, publication_ids: list[int], now: datetime
) -> list[tuple[str, str, str | None]]:
    """Mark exactly these sent changes confirmed; (channel, sku, promotion id) of each."""
    if not publication_ids:
        return []
    waiting = and_(
        price_publications.c.id.in_(publication_ids),
        price_publications.c.state == PublicationState.SENT.value,
    )
    confirmed = [
        (r.channel, r.sku, r.promotion_id)
        for r in conn.execute(
            select(
                price_publications.c.channel,
                price_publications.c.sku,
                price_publications.c.promotion_id,
            ).where(waiting)
        )
    ]
    conn.execute(
        update(price_publications)
        .where(waiting)
        .values(state=PublicationState.CONFIRMED.value, confirmed_at=now)
    )
    return confirmed


# ---------------------------------------------------------------- feeds


def insert_feed(
    conn: Connection,
    *,
    feed_id: str,
    channel: str,
    feed_type: str,
    document_id: str,
    messages: list[dict[str, Any]],
    now: datetime,
) -> None:
    conn.execute(
        amazon_feeds.insert().values(
            feed_id=feed_id,
            channel=channel,
            feed_type=feed_type,
            document_id=document_id,
            state=SUBMITTED,
            messages=messages,
            created_at=now,
        )
    )


@dataclass(frozen=True)
class Feed:
    feed_id: str
    state: str
    messages: list[dict[str, Any]]


def feeds_in(conn: Connection, channel: str, states: tuple[str, ...], feed_type: str) -> list[Feed]:
    rows = conn.execute(
        select(amazon_feeds.c.feed_id, amazon_feeds.c.state, amazon_feeds.c.messages)
        .where(
            amazon_feeds.c.channel == channel,
            amazon_feeds.c.feed_type == feed_type,
            amazon_feeds.c.state.in_(states),
        )
        .order_by(amazon_feeds.c.created_at)
    ).all()
    return [Feed(r.feed_id, r.state, list(r.messages)) for r in rows]


def finish_feed(
    conn: Connection,
    feed_id: str,
    *,
    state: str,
    messages: list[dict[str, Any]],
    detail: str | None,
    now: datetime,
) -> None:
    conn.execute(
        update(amazon_feeds)
        .where(amazon_feeds.c.feed_id == feed_id)
        .values(state=state, messages=messages, detail=detail, finished_at=now)
    )


# ---------------------------------------------------------------- seller cancellations

TO_SEND = "to_send"
SENDING = "sending"
ACCEPTED = "accepted"
REFUSED = "refused"


@dataclass(frozen=True)
class Cancellation:
    order_id: str
    amazon_order_id: str
    items: list[dict[str, str]]
    """[{"item": orderItemId, "reason": CancelReason}]"""
    state: str = TO_SEND
    feed_id: str | None = None
    detail: str | None = None


def request_cancellation(
    conn: Connection, cancellation: Cancellation, channel: str, now: datetime
) -> bool:
    """Record that the order is to be cancelled on Amazon; once per order (false when it was
    recorded already, whatever became of it)."""
    statement = dialect_insert(conn, amazon_cancellations).values(
        order_id=cancellation.order_id,
        channel=channel,
        amazon_order_id=cancellation.amazon_order_id,
        items=cancellation.items,
        state=TO_SEND,
        requested_at=now,
        updated_at=now,
    )
    result = conn.execute(statement.on_conflict_do_nothing(index_elements=["order_id"]))
    return result.rowcount > 0


def _cancellation(row: Any) -> Cancellation:
    return Cancellation(
        order_id=row.order_id,
        amazon_order_id=row.amazon_order_id,
        items=list(row.items),
        state=row.state,
        feed_id=row.feed_id,
        detail=row.detail,
    )


def claim_cancellations(
    conn: Connection, channel: str, limit: int, now: datetime, abandoned_before: datetime
) -> list[Cancellation]:
    """The next cancellations to send, moved to sending (at now) in the transaction that reads
    them, so no other sender takes them meanwhile. A claim made before abandoned_before was left
    by a gateway that stopped while sending, and is taken again."""
    waiting = (
        select(amazon_cancellations)
        .where(
            amazon_cancellations.c.channel == channel,
            or_(
                amazon_cancellations.c.state == TO_SEND,
                and_(
                    amazon_cancellations.c.state == SENDING,
                    amazon_cancellations.c.updated_at < abandoned_before,
                ),
            ),
        )
        .order_by(amazon_cancellations.c.requested_at, amazon_cancellations.c.order_id)
        .limit(limit)
    )
    rows = conn.execute(for_update(conn, waiting)).all()
    if rows:
        conn.execute(
            update(amazon_cancellations)
            .where(amazon_cancellations.c.order_id.in_([row.order_id for row in rows]))
            .values(state=SENDING, updated_at=now)
        )
    return [_cancellation(row) for row in rows]


def _claimed(order_ids: list[str], claimed_at: datetime) -> Any:
    """Still in the claim made at claimed_at (not moved on, not claimed again since)."""
    return and_(
        amazon_cancellations.c.order_id.in_(order_ids),
        amazon_cancellations.c.state == SENDING,
        amazon_cancellations.c.updated_at == claimed_at,
    )


def release_cancellations(
    conn: Connection, order_ids: list[str], claimed_at: datetime, now: datetime
) -> None:
    """Claimed cancellations not sent after all: back to be sent next round."""
    conn.execute(
        update(amazon_cancellations)
        .where(_claimed(order_ids, claimed_at))
        .values(state=TO_SEND, updated_at=now)
    )


def get_cancellation(conn: Connection, order_id: str) -> Cancellation | None:
    row = conn.execute(
        select(amazon_cancellations).where(amazon_cancellations.c.order_id == order_id)
    ).first()
    return None if row is None else _cancellation(row)


def cancellations_submitted(
    conn: Connection, order_ids: list[str], claimed_at: datetime, feed_id: str, now: datetime
) -> None:
    conn.execute(
        update(amazon_cancellations)
        .where(_claimed(order_ids, claimed_at))
        .values(state=SUBMITTED, feed_id=feed_id, updated_at=now)
    )


def finish_cancellation(
    conn: Connection,
    order_id: str,
    *,
    state: str,
    detail: str | None,
    now: datetime,
    feed_id: str | None = None,
) -> bool:
    """Move a cancellation on from submitted (in that feed, when one is named), or from
    to_send, sending or submitted; false when it had moved on already (Amazon showed the order
    cancelled meanwhile)."""
    waiting = [amazon_cancellations.c.order_id == order_id]
    if feed_id is None:
        waiting.append(amazon_cancellations.c.state.in_((TO_SEND, SENDING, SUBMITTED)))
    else:
        waiting.extend(
            (amazon_cancellations.c.state == SUBMITTED, amazon_cancellations.c.feed_id == feed_id)
        )
    result = conn.execute(
        update(amazon_cancellations)
        .where(*waiting)
        .values(state=state, detail=detail, updated_at=now)
    )
    return result.rowcount > 0
