"""SQL of price books, run inside the caller's transaction.

Nothing here updates or deletes a published version's rows: the only writes to entries and
promotions go to drafts, and the database refuses any other (triggers of migration 0009).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update

from contracts.money import Money
from contracts.price import Promotion
from process_api.inventory.repository import chunked
from process_api.pricing.models import (
    ChangeKind,
    Entry,
    PublicationState,
    VersionRow,
    VersionStatus,
)
from process_api.tables import price_book_versions as versions
from process_api.tables import price_books as books
from process_api.tables import price_entries as entries
from process_api.tables import price_promotions as promotions
from process_api.tables import price_publications as publications
from process_api.tables import published_availability

# ---------------------------------------------------------------- books and versions


def find_book(conn: Connection, channel: str, currency: str) -> Row[Any] | None:
    return conn.execute(
        select(books).where(books.c.channel == channel, books.c.currency == currency)
    ).first()


def load_book(conn: Connection, book_id: str) -> Row[Any] | None:
    return conn.execute(select(books).where(books.c.book_id == book_id)).first()


def list_books(conn: Connection, channel: str | None) -> list[Row[Any]]:
    query = select(books).order_by(books.c.channel, books.c.currency)
    if channel is not None:
        query = query.where(books.c.channel == channel)
    return list(conn.execute(query))


def insert_book(
    conn: Connection, *, book_id: str, channel: str, currency: str, now: datetime, actor: str
) -> None:
    conn.execute(
        insert(books).values(
            book_id=book_id, channel=channel, currency=currency, created_at=now, created_by=actor
        )
    )


def _version_query() -> Any:
    return select(
        versions,
        books.c.channel,
        books.c.currency,
    ).join(books, books.c.book_id == versions.c.book_id)


def _version(row: Row[Any]) -> VersionRow:
    return VersionRow(
        book_id=row.book_id,
        channel=row.channel,
        currency=row.currency,
        version=row.version,
        status=VersionStatus(row.status),
        based_on=row.based_on,
        created_at=row.created_at,
        created_by=row.created_by,
        published_at=row.published_at,
        published_by=row.published_by,
    )


def load_version(
    conn: Connection, book_id: str, version: int, *, for_update: bool = False
) -> VersionRow | None:
    query = _version_query().where(versions.c.book_id == book_id, versions.c.version == version)
    if for_update and conn.dialect.name == "postgresql":
        # Writers of a draft and its publisher take turns on the version row.
        query = query.with_for_update(of=versions)
    row = conn.execute(query).first()
    return None if row is None else _version(row)


def list_versions(conn: Connection, book_id: str) -> list[VersionRow]:
    rows = conn.execute(
        _version_query().where(versions.c.book_id == book_id).order_by(versions.c.version)
    )
    return [_version(row) for row in rows]


def latest_published(conn: Connection, book_id: str) -> VersionRow | None:
    row = conn.execute(
        _version_query()
        .where(versions.c.book_id == book_id, versions.c.status == VersionStatus.PUBLISHED.value)
        .order_by(versions.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _version(row)


def version_in_force(conn: Connection, book_id: str, at: datetime) -> VersionRow | None:
    """The last version published at or before `at`: the one whose prices held at that instant."""
    row = conn.execute(
        _version_query()
        .where(
            versions.c.book_id == book_id,
            versions.c.status == VersionStatus.PUBLISHED.value,
            versions.c.published_at <= at,
        )
        .order_by(versions.c.published_at.desc(), versions.c.version.desc())
        .limit(1)
    ).first()
    return None if row is None else _version(row)


def open_draft(conn: Connection, book_id: str) -> int | None:
    version: int | None = conn.execute(
        select(versions.c.version).where(versions.c.draft_key == book_id)
    ).scalar_one_or_none()
    return version


def next_version(conn: Connection, book_id: str) -> int:
    last = conn.execute(
        select(func.coalesce(func.max(versions.c.version), 0)).where(versions.c.book_id == book_id)
    ).scalar_one()
    return int(last) + 1


def insert_draft(
    conn: Connection,
    *,
    book_id: str,
    version: int,
    based_on: int | None,
    now: datetime,
    actor: str,
) -> None:
    conn.execute(
        insert(versions).values(
            book_id=book_id,
            version=version,
            status=VersionStatus.DRAFT.value,
            draft_key=book_id,
            based_on=based_on,
            created_at=now,
            created_by=actor,
        )
    )


def mark_published(
    conn: Connection, book_id: str, version: int, *, now: datetime, actor: str
) -> bool:
    result = conn.execute(
        update(versions)
        .where(
            versions.c.book_id == book_id,
            versions.c.version == version,
            versions.c.status == VersionStatus.DRAFT.value,
        )
        .values(
            status=VersionStatus.PUBLISHED.value,
            draft_key=None,
            published_at=now,
            published_by=actor,
        )
    )
    return bool(result.rowcount)


def delete_draft(conn: Connection, book_id: str, version: int) -> None:
    remove_entries(conn, book_id, version, None)
    conn.execute(
        delete(versions).where(
            versions.c.book_id == book_id,
            versions.c.version == version,
            versions.c.status == VersionStatus.DRAFT.value,
        )
    )


# ---------------------------------------------------------------- entries


def load_entries(
    conn: Connection,
    book_id: str,
    version: int,
    currency: str,
    skus: Sequence[str] | None = None,
) -> dict[str, Entry]:
    """The version's entries by SKU (all, or those of `skus`), promotions by start then id."""
    found: dict[str, Entry] = {}
    for chunk in [None] if skus is None else chunked(sorted(set(skus))):
        entry_query = select(entries).where(
            entries.c.book_id == book_id, entries.c.version == version
        )
        promotion_query = select(promotions).where(
            promotions.c.book_id == book_id, promotions.c.version == version
        )
        if chunk is not None:
            entry_query = entry_query.where(entries.c.sku.in_(chunk))
            promotion_query = promotion_query.where(promotions.c.sku.in_(chunk))
        by_sku: dict[str, list[Promotion]] = {}
        for row in conn.execute(
            promotion_query.order_by(
                promotions.c.sku, promotions.c.starts_at, promotions.c.promotion_id
            )
        ):
            by_sku.setdefault(row.sku, []).append(
                Promotion(
                    promotion_id=row.promotion_id,
                    price=Money(amount=row.price, currency=currency),
                    starts_at=row.starts_at,
                    ends_at=row.ends_at,
                )
            )
        for row in conn.execute(entry_query.order_by(entries.c.sku)):
            found[row.sku] = Entry(
                sku=row.sku,
                base_price=Money(amount=row.base_price, currency=currency),
                base_price_read_at=row.base_price_read_at,
                floor_price=_money(row.floor_price, currency),
                unit_cost=_money(row.unit_cost, currency),
                promotions=tuple(by_sku.get(row.sku, ())),
            )
    return dict(sorted(found.items()))


def entry_skus(conn: Connection, book_id: str, version: int) -> list[str]:
    return list(
        conn.execute(
            select(entries.c.sku)
            .where(entries.c.book_id == book_id, entries.c.version == version)
            .order_by(entries.c.sku)
        ).scalars()
    )


def _money(amount: Any, currency: str) -> Money | None:
    return None if amount is None else Money(amount=amount, currency=currency)


def remove_entries(
    conn: Connection, book_id: str, version: int, skus: Sequence[str] | None
) -> None:
    """Delete entries of a draft (all of them with skus=None) with their promotions."""
    for chunk in [None] if skus is None else chunked(sorted(set(skus))):
        for table in (promotions, entries):
            statement = delete(table).where(table.c.book_id == book_id, table.c.version == version)
            if chunk is not None:
                statement = statement.where(table.c.sku.in_(chunk))
            conn.execute(statement)


def insert_entries(conn: Connection, book_id: str, version: int, items: Iterable[Entry]) -> None:
    entry_rows: list[dict[str, Any]] = []
    promotion_rows: list[dict[str, Any]] = []
    for entry in items:
        entry_rows.append(
            {
                "book_id": book_id,
                "version": version,
                "sku": entry.sku,
                "base_price": entry.base_price.amount,
                "base_price_read_at": entry.base_price_read_at,
                "floor_price": None if entry.floor_price is None else entry.floor_price.amount,
                "unit_cost": None if entry.unit_cost is None else entry.unit_cost.amount,
            }
        )
        promotion_rows.extend(
            {
                "book_id": book_id,
                "version": version,
                "sku": entry.sku,
                "promotion_id": p.promotion_id,
                "price": p.price.amount,
                "starts_at": p.starts_at,
                "ends_at": p.ends_at,
            }
            for p in entry.promotions
        )
    if entry_rows:
        conn.execute(insert(entries), entry_rows)
    if promotion_rows:
        conn.execute(insert(promotions), promotion_rows)


def set_base_prices(
    conn: Connection,
    book_id: str,
    version: int,
    prices: Mapping[str, Money],
    read_at: datetime,
) -> None:
    """Refresh a draft's base prices from the ERP (before it is published)."""
    for sku, price in prices.items():
        conn.execute(
            update(entries)
            .where(entries.c.book_id == book_id, entries.c.version == version, entries.c.sku == sku)
            .values(base_price=price.amount, base_price_read_at=read_at)
        )


def count_entries(conn: Connection, book_id: str, version: int) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(entries)
            .where(entries.c.book_id == book_id, entries.c.version == version)
        ).scalar_one()
    )


# ---------------------------------------------------------------- publications


def insert_publication(
    conn: Connection,
    *,
    book_id: str,
    version: int,
    channel: str,
    sku: str,
    change: ChangeKind,
    promotion_id: str | None,
    effective_at: datetime,
    due_at: datetime,
    data: Mapping[str, JsonValue],
    now: datetime,
) -> int:
    result = conn.execute(
        insert(publications)
        .values(
            book_id=book_id,
            version=version,
            channel=channel,
            sku=sku,
            change=change.value,
            promotion_id=promotion_id,
            effective_at=effective_at,
            due_at=due_at,
            state=PublicationState.SCHEDULED.value,
            data=dict(data),
            created_at=now,
        )
        .returning(publications.c.id)
    )
    return int(result.scalar_one())


def load_publication(
    conn: Connection, publication_id: int, *, for_update: bool = False
) -> Row[Any] | None:
    query = select(publications).where(publications.c.id == publication_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def mark_sent(conn: Connection, publication_id: int, *, event_id: str, now: datetime) -> None:
    conn.execute(
        update(publications)
        .where(
            publications.c.id == publication_id,
            publications.c.state == PublicationState.SCHEDULED.value,
        )
        .values(state=PublicationState.SENT.value, event_id=event_id, sent_at=now)
    )


def cancel_scheduled(
    conn: Connection, book_id: str, sku: str, promotion_id: str | None
) -> list[int]:
    """Cancel the scheduled (unsent) publications of a SKU's promotion (or of all the SKU's
    promotions with promotion_id=None); their ids, whose send timers must go too."""
    condition = and_(
        publications.c.book_id == book_id,
        publications.c.sku == sku,
        publications.c.state == PublicationState.SCHEDULED.value,
        publications.c.change == ChangeKind.PROMOTION.value,
    )
    if promotion_id is not None:
        condition = and_(condition, publications.c.promotion_id == promotion_id)
    ids = list(conn.execute(select(publications.c.id).where(condition)).scalars())
    if ids:
        conn.execute(
            update(publications)
            .where(publications.c.id.in_(ids))
            .values(state=PublicationState.CANCELLED.value)
        )
    return ids


def latest_promotion_publication(
    conn: Connection, book_id: str, sku: str, promotion_id: str
) -> Row[Any] | None:
    """The last publication of a promotion that was not cancelled."""
    return conn.execute(
        select(publications)
        .where(
            publications.c.book_id == book_id,
            publications.c.sku == sku,
            publications.c.promotion_id == promotion_id,
            publications.c.change == ChangeKind.PROMOTION.value,
            publications.c.state != PublicationState.CANCELLED.value,
        )
        .order_by(publications.c.id.desc())
        .limit(1)
    ).first()


def confirm(
    conn: Connection, channel: str, skus: Sequence[str], confirmed_at: datetime
) -> list[tuple[str, str | None]]:
    """The channel shows what was sent to it for these SKUs at or before confirmed_at; the
    (SKU, promotion id or None) of each change it confirms."""
    confirmed: list[tuple[str, str | None]] = []
    for chunk in chunked(sorted(set(skus))):
        waiting = (
            publications.c.channel == channel,
            publications.c.state == PublicationState.SENT.value,
            publications.c.sku.in_(chunk),
            publications.c.sent_at <= confirmed_at,
        )
        confirmed.extend(
            (row.sku, row.promotion_id)
            for row in conn.execute(
                select(publications.c.sku, publications.c.promotion_id).where(*waiting)
            )
        )
        conn.execute(
            update(publications)
            .where(*waiting)
            .values(state=PublicationState.CONFIRMED.value, confirmed_at=confirmed_at)
        )
    return confirmed


def publication_counts(conn: Connection, channel: str) -> tuple[int, int, datetime | None]:
    """(scheduled, sent and unconfirmed, oldest unconfirmed sent_at) of a channel."""
    rows = conn.execute(
        select(publications.c.state, func.count(), func.min(publications.c.sent_at))
        .where(
            publications.c.channel == channel,
            publications.c.state.in_(
                [PublicationState.SCHEDULED.value, PublicationState.SENT.value]
            ),
        )
        .group_by(publications.c.state)
    ).all()
    by_state = {row[0]: (int(row[1]), row[2]) for row in rows}
    scheduled = by_state.get(PublicationState.SCHEDULED.value, (0, None))[0]
    sent, oldest = by_state.get(PublicationState.SENT.value, (0, None))
    return scheduled, sent, oldest


def listed_quantity(conn: Connection, channel: str, sku: str) -> int | None:
    """Units last published to the channel for the SKU (None when none were)."""
    quantity: int | None = conn.execute(
        select(published_availability.c.quantity).where(
            published_availability.c.channel == channel, published_availability.c.sku == sku
        )
    ).scalar_one_or_none()
    return quantity
