"""Price books for callers outside a unit of work: each call is one transaction.

A price book holds one channel's prices in one currency as numbered versions. A draft is
editable; publishing it checks it against the channel's price rules (every violation listed),
freezes it for good, and schedules each change it makes for the channel: sent as a
`price.changed` outbox event the channel's lead time before it takes effect (at once when that
is past), confirmed by the channel, and checked at each promotion's start.

Base prices belong to the ERP: an entry's base price is the item master's list price, read when
the entry is written and again when the version is published; callers never type it in.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, JsonValue
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from contracts.channel import ChannelProfile
from contracts.common import ensure_utc
from contracts.exceptions import Severity
from contracts.money import MAX_AMOUNT, Money
from contracts.price import ChannelPrice, Promotion
from gateway_infra.scheduler import DueTimer, RetryPolicy, Scheduler, cancel, schedule
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api import audit
from process_api.channels import repository as channels_repo
from process_api.channels.service import ChannelProfiles
from process_api.exceptions import open_exception, resolve_exceptions
from process_api.inventory.repository import chunked
from process_api.pricing import repository as repo
from process_api.pricing.errors import (
    DraftChanged,
    DraftOpen,
    NoChannelProfile,
    PriceBookExists,
    PriceBookNotFound,
    PriceRulesViolated,
    VersionPublished,
)
from process_api.pricing.models import (
    PRICE_CHANGED,
    SEND_TIMER,
    SOURCE,
    START_CHECK_TIMER,
    ChangeKind,
    Entry,
    EntryBody,
    EntryIn,
    EntryView,
    PriceBookView,
    PublicationState,
    PublicationStatus,
    PublishedVersion,
    ScheduledChange,
    ValidationReport,
    VersionRow,
    VersionStatus,
    VersionSummary,
    VersionView,
    violation_views,
)
from process_api.pricing.rules import (
    Candidate,
    check_entries,
    covering_promotion,
    earlier,
    plan_changes,
)
from system_api.erp.port import ErpPort

__all__ = ["PricingService"]

PUBLICATION_RETRY = RetryPolicy(
    max_attempts=20, base_delay=timedelta(seconds=5), max_delay=timedelta(minutes=10)
)
ERP_CONCURRENCY = 16
"""Item master reads in flight at once while a version's base prices are read."""
UNCONFIRMED = "promotion_unconfirmed"

BasePrices = Mapping[str, Money | str]
"""Per SKU: the ERP's base price in the book's currency, or why there is none."""


class PricingService:
    """Price books, their publication to channels, and the live price at any instant."""

    def __init__(self, store: Store, erp: ErpPort, channels: ChannelProfiles) -> None:
        self.store = store
        self.erp = erp
        self.channels = channels

    def register_timers(self, scheduler: Scheduler) -> None:
        scheduler.register(SEND_TIMER, self._on_send_timer, retry=PUBLICATION_RETRY)
        scheduler.register(START_CHECK_TIMER, self._on_start_check, retry=PUBLICATION_RETRY)

    # ------------------------------------------------------------ books and drafts

    async def create_book(self, channel: str, currency: str | None, *, actor: str) -> PriceBookView:
        """A new price book for the channel (in its profile's currency by default), with an
        empty draft as version 1."""

        def unit(uow: UnitOfWork) -> PriceBookView:
            conn = uow.conn
            profile = _profile(conn, channel)
            chosen = currency or profile.currency
            existing = repo.find_book(conn, channel, chosen)
            if existing is not None:
                raise PriceBookExists(existing.book_id, channel, chosen)
            book_id = "pb_" + secrets.token_hex(8)
            repo.insert_book(
                conn, book_id=book_id, channel=channel, currency=chosen, now=uow.now, actor=actor
            )
            repo.insert_draft(
                conn, book_id=book_id, version=1, based_on=None, now=uow.now, actor=actor
            )
            view = _book_view(conn, book_id)
            _audit(uow, actor, "price_book.created", view.book_id, channel, None, view)
            return view

        try:
            return await self.store.write(unit)
        except IntegrityError:  # the same book created at the same moment by another caller
            book_id = await self.store.read(
                lambda conn: _book_id(conn, channel, currency or _profile(conn, channel).currency)
            )
            raise PriceBookExists(book_id, channel, currency or "its currency") from None

    async def list_books(self, channel: str | None = None) -> list[PriceBookView]:
        def read(conn: Connection) -> list[PriceBookView]:
            return [_book_view(conn, row.book_id) for row in repo.list_books(conn, channel)]

        return await self.store.read(read)

    async def book(self, book_id: str) -> PriceBookView:
        def read(conn: Connection) -> PriceBookView:
            if repo.load_book(conn, book_id) is None:
                raise PriceBookNotFound(book_id)
            return _book_view(conn, book_id)

        return await self.store.read(read)

    async def versions(self, book_id: str) -> list[VersionSummary]:
        return (await self.book(book_id)).versions

    async def version(self, book_id: str, version: int) -> VersionView:
        def read(conn: Connection) -> VersionView:
            return _version_view(conn, _require_version(conn, book_id, version))

        return await self.store.read(read)

    async def new_draft(self, book_id: str, *, actor: str) -> VersionView:
        """A draft holding a copy of the latest published version (empty if none was)."""

        def unit(uow: UnitOfWork) -> VersionView:
            conn = uow.conn
            if repo.load_book(conn, book_id) is None:
                raise PriceBookNotFound(book_id)
            draft = repo.open_draft(conn, book_id)
            if draft is not None:
                raise DraftOpen(book_id, draft)
            number = repo.next_version(conn, book_id)
            base = repo.latest_published(conn, book_id)
            repo.insert_draft(
                conn,
                book_id=book_id,
                version=number,
                based_on=None if base is None else base.version,
                now=uow.now,
                actor=actor,
            )
            if base is not None:
                copied = repo.load_entries(conn, book_id, base.version, base.currency)
                repo.insert_entries(conn, book_id, number, copied.values())
            view = _version_view(conn, _require_version(conn, book_id, number))
            state = _version_state(view)
            _audit(uow, actor, "price_book.draft_opened", book_id, view.channel, None, state)
            return view

        try:
            return await self.store.write(unit)
        except IntegrityError:  # another draft was opened at the same moment
            draft = await self.store.read(lambda conn: repo.open_draft(conn, book_id))
            raise DraftOpen(book_id, draft or 0) from None

    async def discard_draft(self, book_id: str, version: int, *, actor: str) -> None:
        def unit(uow: UnitOfWork) -> None:
            draft = _require_draft(uow.conn, book_id, version)
            before = _version_state(_version_view(uow.conn, draft))
            repo.delete_draft(uow.conn, book_id, version)
            _audit(uow, actor, "price_book.draft_discarded", book_id, draft.channel, before, None)

        await self.store.write(unit)

    # ------------------------------------------------------------ editing a draft

    async def replace_entries(
        self, book_id: str, version: int, entries: Sequence[EntryIn], *, actor: str
    ) -> VersionView:
        """Every entry of the draft; all refused (422, every violation) or all stored."""
        row = await self._draft_before_write(book_id, version)
        bases = await self._base_prices([e.sku for e in entries], row.currency)

        def unit(uow: UnitOfWork) -> VersionView:
            conn = uow.conn
            draft = _require_draft(conn, book_id, version, for_update=True)
            rules = _profile(conn, draft.channel).price_rules
            candidates = [_candidate(e.sku, e, bases[e.sku]) for e in entries]
            violations = check_entries(
                candidates,
                currency=draft.currency,
                rules=rules,
                now=uow.now,
                published=_published_entries(conn, draft),
            )
            if violations:
                raise PriceRulesViolated(violations)
            before = _version_view(conn, draft)
            repo.remove_entries(conn, book_id, version, None)
            repo.insert_entries(conn, book_id, version, [_entry(c, uow.now) for c in candidates])
            after = _version_view(conn, draft)
            _audit(
                uow,
                actor,
                "price_book.entries_replaced",
                book_id,
                draft.channel,
                _version_state(before),
                _version_state(after)
                | {"entry_changes": _entry_changes(before.entries, after.entries)},
            )
            return after

        return await self.store.write(unit)

    async def put_entry(
        self, book_id: str, version: int, sku: str, body: EntryBody, *, actor: str
    ) -> EntryView:
        """Add or replace one SKU's entry of the draft (pointers of violations into the body)."""
        row = await self._draft_before_write(book_id, version)
        bases = await self._base_prices([sku], row.currency)

        def unit(uow: UnitOfWork) -> EntryView:
            conn = uow.conn
            draft = _require_draft(conn, book_id, version, for_update=True)
            rules = _profile(conn, draft.channel).price_rules
            candidate = _candidate(sku, body, bases[sku])
            violations = check_entries(
                [candidate],
                currency=draft.currency,
                rules=rules,
                now=uow.now,
                published=_published_entries(conn, draft),
                pointer="#",
                single=True,
            )
            if violations:
                raise PriceRulesViolated(violations)
            old = repo.load_entries(conn, book_id, version, draft.currency, [sku]).get(sku)
            repo.remove_entries(conn, book_id, version, [sku])
            repo.insert_entries(conn, book_id, version, [_entry(candidate, uow.now)])
            stored = repo.load_entries(conn, book_id, version, draft.currency, [sku])[sku]
            view = _entry_view(stored)
            before = None if old is None else _entry_view(old)
            _audit(uow, actor, "price_book.entry_set", book_id, draft.channel, before, view)
            return view

        return await self.store.write(unit)

    async def remove_entry(self, book_id: str, version: int, sku: str, *, actor: str) -> bool:
        """Take a SKU out of the draft; false when it was not in it."""

        def unit(uow: UnitOfWork) -> bool:
            draft = _require_draft(uow.conn, book_id, version, for_update=True)
            old = repo.load_entries(uow.conn, book_id, version, draft.currency, [sku]).get(sku)
            if old is None:
                return False
            repo.remove_entries(uow.conn, book_id, version, [sku])
            before = _entry_view(old)
            _audit(uow, actor, "price_book.entry_removed", book_id, draft.channel, before, None)
            return True

        return await self.store.write(unit)

    async def _draft_before_write(self, book_id: str, version: int) -> VersionRow:
        """Refuse an edit of a published version before asking the ERP anything."""
        return await self.store.read(lambda conn: _require_draft(conn, book_id, version))

    # ------------------------------------------------------------ validation and publication

    async def validate(self, book_id: str, version: int) -> ValidationReport:
        """The version checked as publishing it now would check it (base prices read from the
        ERP now); a published version is checked against the rules in force now."""
        row = await self.store.read(lambda conn: _require_version(conn, book_id, version))
        skus = await self.store.read(lambda conn: repo.entry_skus(conn, book_id, version))
        bases = await self._base_prices(skus, row.currency)
        now = self.store.clock.now()

        def read(conn: Connection) -> ValidationReport:
            current = _require_version(conn, book_id, version)
            rules = _profile(conn, current.channel).price_rules
            entries = repo.load_entries(conn, book_id, version, current.currency)
            previous = (
                _published_entries(conn, current)
                if current.status is VersionStatus.DRAFT
                else _entries_before(conn, current)
            )
            candidates = [
                _candidate(sku, entry, bases.get(sku, "read from the ERP while it changed"))
                for sku, entry in entries.items()
            ]
            violations = check_entries(
                candidates, currency=current.currency, rules=rules, now=now, published=previous
            )
            return ValidationReport(
                book_id=book_id,
                version=version,
                valid=not violations,
                checked_at=now,
                violations=violation_views(violations),
            )

        return await self.store.read(read)

    async def publish(self, book_id: str, version: int, *, actor: str) -> PublishedVersion:
        """Check the draft against the channel's rules (422 with every violation), take the
        ERP's base prices, freeze the version and schedule what it changes for the channel."""
        row = await self._draft_before_write(book_id, version)
        skus = await self.store.read(lambda conn: repo.entry_skus(conn, book_id, version))
        bases = await self._base_prices(skus, row.currency)

        def unit(uow: UnitOfWork) -> PublishedVersion:
            conn, now = uow.conn, uow.now
            draft = _require_draft(conn, book_id, version, for_update=True)
            profile = _profile(conn, draft.channel)
            entries = repo.load_entries(conn, book_id, version, draft.currency)
            if set(entries) - set(bases):
                raise DraftChanged(book_id, version)
            replaced = repo.latest_published(conn, book_id)
            previous = _published_entries(conn, draft)
            candidates = [_candidate(sku, e, bases[sku]) for sku, e in entries.items()]
            violations = check_entries(
                candidates,
                currency=draft.currency,
                rules=profile.price_rules,
                now=now,
                published=previous,
            )
            if violations:
                raise PriceRulesViolated(violations)
            fresh = {sku: _money(bases[sku]) for sku in entries}
            repo.set_base_prices(conn, book_id, version, fresh, now)
            current = {
                sku: replace(entry, base_price=fresh[sku], base_price_read_at=now)
                for sku, entry in entries.items()
            }
            if not repo.mark_published(conn, book_id, version, now=now, actor=actor):
                raise VersionPublished(book_id, version)
            changes = self._schedule_changes(uow, draft, profile, previous, current)
            published = _require_version(conn, book_id, version)
            view = _version_view(conn, published)
            before: dict[str, JsonValue] = {
                "published_version": None if replaced is None else replaced.version,
                "entry_count": len(previous),
            }
            diff = _entry_changes([_entry_view(e) for e in previous.values()], view.entries)
            after = _version_state(view) | {"entry_changes": diff}
            _audit(uow, actor, "price_book.published", book_id, draft.channel, before, after)
            return PublishedVersion(**view.model_dump(), changes=changes)

        return await self.store.write(unit)

    def _schedule_changes(
        self,
        uow: UnitOfWork,
        version: VersionRow,
        profile: ChannelProfile,
        previous: Mapping[str, Entry],
        current: Mapping[str, Entry],
    ) -> list[ScheduledChange]:
        conn, now = uow.conn, uow.now
        lead = profile.price_rules.publication_lead_time
        book_id, channel = version.book_id, version.channel
        scheduled: list[ScheduledChange] = []
        for change in plan_changes(previous, current, now):
            sku, pid = change.sku, change.promotion_id
            # A change not yet sent that this version replaces is never sent.
            if change.change in (ChangeKind.PROMOTION, ChangeKind.PROMOTION_WITHDRAWN):
                self._cancel_unsent(conn, book_id, sku, pid)
            if change.change is ChangeKind.PROMOTION_WITHDRAWN:
                assert pid is not None
                cancel(conn, kind=START_CHECK_TIMER, key=_promotion_key(book_id, sku, pid))
                if repo.latest_promotion_publication(conn, book_id, sku, pid) is None:
                    continue  # never sent: the channel has nothing to withdraw
            if change.change is ChangeKind.ENTRY_REMOVED:
                self._cancel_unsent(conn, book_id, sku, None)
                for old in previous[sku].promotions:
                    key = _promotion_key(book_id, sku, old.promotion_id)
                    cancel(conn, kind=START_CHECK_TIMER, key=key)
            due = max(earlier(change.effective_at, lead), now)
            data: dict[str, JsonValue] = {
                "channel": channel,
                "currency": version.currency,
                "book_id": book_id,
                "version": version.version,
                "sku": sku,
                "change": change.change.value,
                "effective_at": change.effective_at.isoformat(),
                "base_price": None if change.base_price is None else str(change.base_price.amount),
                "promotion_id": pid,
                "promotion": None
                if change.promotion is None
                else {
                    "promotion_id": change.promotion.promotion_id,
                    "price": str(change.promotion.price.amount),
                    "starts_at": change.promotion.starts_at.isoformat(),
                    "ends_at": change.promotion.ends_at.isoformat(),
                },
            }
            publication_id = repo.insert_publication(
                conn,
                book_id=book_id,
                version=version.version,
                channel=channel,
                sku=sku,
                change=change.change,
                promotion_id=pid,
                effective_at=change.effective_at,
                due_at=due,
                data=data,
                now=now,
            )
            state = PublicationState.SCHEDULED
            if due <= now:
                _send(uow, publication_id, channel, sku, data)
                state = PublicationState.SENT
            else:
                schedule(
                    conn,
                    kind=SEND_TIMER,
                    key=str(publication_id),
                    due_at=due,
                    now=now,
                    payload={"publication_id": publication_id},
                )
            if change.starts_check and change.promotion is not None and pid is not None:
                schedule(
                    conn,
                    kind=START_CHECK_TIMER,
                    key=_promotion_key(book_id, sku, pid),
                    due_at=change.promotion.starts_at,
                    now=now,
                    payload={"book_id": book_id, "sku": sku, "promotion_id": pid},
                )
            scheduled.append(
                ScheduledChange(
                    publication_id=publication_id,
                    sku=sku,
                    change=change.change,
                    promotion_id=pid,
                    effective_at=change.effective_at,
                    send_at=due,
                    state=state,
                )
            )
        return scheduled

    @staticmethod
    def _cancel_unsent(conn: Connection, book_id: str, sku: str, promotion_id: str | None) -> None:
        for publication_id in repo.cancel_scheduled(conn, book_id, sku, promotion_id):
            cancel(conn, kind=SEND_TIMER, key=str(publication_id))

    # ------------------------------------------------------------ timers

    async def _on_send_timer(self, timer: DueTimer) -> None:
        publication_id = int(timer.payload["publication_id"])

        def unit(uow: UnitOfWork) -> None:
            row = repo.load_publication(uow.conn, publication_id, for_update=True)
            if row is None or row.state != PublicationState.SCHEDULED.value:
                return  # cancelled by a later version, or sent already
            _send(uow, row.id, row.channel, row.sku, row.data)

        await self.store.write(unit)

    async def _on_start_check(self, timer: DueTimer) -> None:
        """At a promotion's start: unless the channel confirmed it by then, an exception."""
        book_id = str(timer.payload["book_id"])
        sku = str(timer.payload["sku"])
        promotion_id = str(timer.payload["promotion_id"])

        def unit(uow: UnitOfWork) -> None:
            conn = uow.conn
            row = repo.latest_promotion_publication(conn, book_id, sku, promotion_id)
            if row is None:
                return
            promotion = row.data["promotion"]
            starts_at = datetime.fromisoformat(promotion["starts_at"])
            if row.state == PublicationState.CONFIRMED.value and row.confirmed_at <= starts_at:
                return
            version = repo.load_version(conn, book_id, row.version)
            assert version is not None
            entry = repo.load_entries(conn, book_id, row.version, version.currency, [sku]).get(sku)
            price = Money(amount=Decimal(promotion["price"]), currency=version.currency)
            sent = "not sent yet" if row.sent_at is None else f"sent {row.sent_at.isoformat()}"
            open_exception(
                uow,
                workflow="pricing",
                code=UNCONFIRMED,
                subject=f"price/{row.channel}/{sku}/{promotion_id}"[:200],
                channel=row.channel,
                detail=(
                    f"promotion {promotion_id} of {sku} at {price} starts "
                    f"{starts_at.isoformat()} on {row.channel}, which has not confirmed it "
                    f"({sent}); shoppers may see another price than the gateway's"
                ),
                money_at_risk=_money_at_risk(conn, row.channel, sku, entry, price),
                severity=Severity.MEDIUM,
                object_ids={
                    "sku": sku,
                    "promotion_id": promotion_id,
                    "book_id": book_id,
                    "version": str(row.version),
                },
            )

        await self.store.write(unit)

    # ------------------------------------------------------------ confirmations

    async def confirm_publication(
        self, channel: str, skus: Sequence[str], confirmed_at: datetime
    ) -> int:
        """The channel shows the changes sent to it for these SKUs at or before confirmed_at;
        how many sent changes that confirms."""
        chosen = sorted(set(skus))

        def unit(uow: UnitOfWork) -> int:
            confirmed = repo.confirm(uow.conn, channel, chosen, ensure_utc(confirmed_at))
            for sku, promotion_id in confirmed:
                if promotion_id is not None:
                    resolve_exceptions(
                        uow,
                        subject=f"price/{channel}/{sku}/{promotion_id}"[:200],
                        codes=[UNCONFIRMED],
                        note="the channel confirmed the promotion",
                    )
            return len(confirmed)

        return await self.store.write(unit)

    async def publication_status(self, channel: str) -> PublicationStatus:
        now = self.store.clock.now()
        scheduled, sent, oldest = await self.store.read(
            lambda conn: repo.publication_counts(conn, channel)
        )
        return PublicationStatus(
            channel=channel,
            scheduled=scheduled,
            awaiting_confirmation=sent,
            oldest_unconfirmed_sent_at=oldest,
            sync_lag_seconds=None if oldest is None else (now - oldest).total_seconds(),
        )

    # ------------------------------------------------------------ live prices

    async def price_at(
        self, channel: str, sku: str, at: datetime, *, currency: str | None = None
    ) -> ChannelPrice:
        [price] = await self.channel_prices(channel, [sku], at, currency=currency)
        return price

    async def channel_prices(
        self,
        channel: str,
        skus: Sequence[str],
        at: datetime | None,
        *,
        currency: str | None = None,
    ) -> list[ChannelPrice]:
        """PricesPort.channel_prices: the price of each SKU on the channel at `at`, from the
        version of its price book (in the channel profile's currency unless named) that was in
        force then; one entry per distinct SKU, in the order asked."""
        at = self.store.clock.now() if at is None else ensure_utc(at)
        if currency is None:
            profile = await self.channels.get(channel)
            currency = None if profile is None else profile.currency
        wanted = list(dict.fromkeys(skus))

        def read(conn: Connection) -> list[ChannelPrice]:
            book = None if currency is None else repo.find_book(conn, channel, currency)
            version = None if book is None else repo.version_in_force(conn, book.book_id, at)
            entries = (
                {}
                if version is None
                else repo.load_entries(
                    conn, version.book_id, version.version, version.currency, wanted
                )
            )
            return [_live_price(channel, sku, at, entries.get(sku), version) for sku in wanted]

        return await self.store.read(read)

    # ------------------------------------------------------------ the ERP's base prices

    async def _base_prices(self, skus: Sequence[str], currency: str) -> dict[str, Money | str]:
        found: dict[str, Money | str] = {}
        for chunk in chunked(sorted(set(skus)), ERP_CONCURRENCY):
            products = await asyncio.gather(*(self.erp.get_product(sku) for sku in chunk))
            for sku, product in zip(chunk, products, strict=True):
                if product is None:
                    found[sku] = "the ERP's item master does not know the SKU"
                elif product.list_price.currency != currency:
                    found[sku] = (
                        f"the ERP's base price is in {product.list_price.currency}, "
                        f"the price book in {currency}"
                    )
                else:
                    found[sku] = product.list_price
        return found


# ---------------------------------------------------------------- helpers


def _profile(conn: Connection, channel: str) -> ChannelProfile:
    stored = channels_repo.load(conn, channel)
    if stored is None:
        raise NoChannelProfile(channel)
    return stored.profile


def _book_id(conn: Connection, channel: str, currency: str) -> str:
    row = repo.find_book(conn, channel, currency)
    return "" if row is None else str(row.book_id)


def _require_version(conn: Connection, book_id: str, version: int) -> VersionRow:
    row = repo.load_version(conn, book_id, version)
    if row is None:
        raise PriceBookNotFound(book_id, version)
    return row


def _require_draft(
    conn: Connection, book_id: str, version: int, *, for_update: bool = False
) -> VersionRow:
    row = repo.load_version(conn, book_id, version, for_update=for_update)
    if row is None:
        raise PriceBookNotFound(book_id, version)
    if row.status is VersionStatus.PUBLISHED:
        raise VersionPublished(book_id, version)
    return row


def _published_entries(conn: Connection, version: VersionRow) -> dict[str, Entry]:
    """The entries of the book's latest published version: what the channel has (or will)."""
    latest = repo.latest_published(conn, version.book_id)
    if latest is None:
        return {}
    return repo.load_entries(conn, latest.book_id, latest.version, latest.currency)


def _entries_before(conn: Connection, version: VersionRow) -> dict[str, Entry]:
    """The entries of the version a published one replaced."""
    if version.version <= 1:
        return {}
    earlier_rows = [
        v
        for v in repo.list_versions(conn, version.book_id)
        if v.status is VersionStatus.PUBLISHED and v.version < version.version
    ]
    if not earlier_rows:
        return {}
    last = earlier_rows[-1]
    return repo.load_entries(conn, last.book_id, last.version, last.currency)


def _candidate(sku: str, body: EntryBody | Entry, base: Money | str) -> Candidate:
    return Candidate(
        sku=sku,
        base_price=base if isinstance(base, Money) else None,
        base_price_issue=base if isinstance(base, str) else None,
        floor_price=body.floor_price,
        unit_cost=body.unit_cost,
        promotions=list(body.promotions),
    )


def _money(base: Money | str | None) -> Money:
    assert isinstance(base, Money), "checked: every entry has a base price"
    return base


def _entry(candidate: Candidate, now: datetime) -> Entry:
    """A checked candidate as stored: promotions by start, then id."""
    promotions = sorted(
        (
            Promotion(
                promotion_id=p.promotion_id,
                price=p.price,
                starts_at=p.starts_at,
                ends_at=p.ends_at,
            )
            for p in candidate.promotions
        ),
        key=lambda p: (p.starts_at, p.promotion_id),
    )
    return Entry(
        sku=candidate.sku,
        base_price=_money(candidate.base_price),
        base_price_read_at=now,
        floor_price=candidate.floor_price,
        unit_cost=candidate.unit_cost,
        promotions=tuple(promotions),
    )


def _send(
    uow: UnitOfWork, publication_id: int, channel: str, sku: str, data: Mapping[str, Any]
) -> None:
    event = uow.emit(
        PRICE_CHANGED,
        source=SOURCE,
        subject=f"price/{channel}/{sku}",
        channel=channel,
        data={**data, "publication_id": publication_id},
    )
    repo.mark_sent(uow.conn, publication_id, event_id=str(event.id), now=uow.now)


def _promotion_key(book_id: str, sku: str, promotion_id: str) -> str:
    """The start check's timer key: readable when it fits the 200 characters of a timer key."""
    key = f"{book_id}/{sku}/{promotion_id}"
    if len(key) <= 200:
        return key
    digest = hashlib.sha256(promotion_id.encode()).hexdigest()
    return f"{book_id}/{sku}/#{digest}"


def _money_at_risk(
    conn: Connection, channel: str, sku: str, entry: Entry | None, price: Money
) -> Money | None:
    """The price difference on every unit the channel lists: what shoppers are charged too much
    (or the retailer earns too little) while the channel shows the other price."""
    quantity = repo.listed_quantity(conn, channel, sku)
    if entry is None or quantity is None:
        return None
    amount = abs(entry.base_price.amount - price.amount) * quantity
    if amount >= MAX_AMOUNT:
        return None
    return Money(amount=amount, currency=price.currency)


def _live_price(
    channel: str,
    sku: str,
    at: datetime,
    entry: Entry | None,
    version: VersionRow | None,
) -> ChannelPrice:
    if entry is None or version is None:
        return ChannelPrice(sku=sku, channel=channel, at=at, price=None, base_price=None)
    chosen = covering_promotion(entry.promotions, at)
    return ChannelPrice(
        sku=sku,
        channel=channel,
        at=at,
        price=entry.base_price if chosen is None else chosen.price,
        base_price=entry.base_price,
        promotion=chosen,
        book_id=version.book_id,
        version=version.version,
    )


def _entry_view(entry: Entry) -> EntryView:
    return EntryView(
        sku=entry.sku,
        base_price=entry.base_price,
        base_price_read_at=entry.base_price_read_at,
        floor_price=entry.floor_price,
        unit_cost=entry.unit_cost,
        promotions=list(entry.promotions),
    )


def _summary(row: VersionRow) -> VersionSummary:
    return VersionSummary(
        version=row.version,
        status=row.status,
        based_on=row.based_on,
        created_at=row.created_at,
        created_by=row.created_by,
        published_at=row.published_at,
        published_by=row.published_by,
    )


def _version_view(conn: Connection, row: VersionRow) -> VersionView:
    entries = repo.load_entries(conn, row.book_id, row.version, row.currency)
    return VersionView(
        **_summary(row).model_dump(),
        book_id=row.book_id,
        channel=row.channel,
        currency=row.currency,
        entries=[_entry_view(entry) for entry in entries.values()],
    )


def _book_view(conn: Connection, book_id: str) -> PriceBookView:
    book = repo.load_book(conn, book_id)
    assert book is not None
    return PriceBookView(
        book_id=book.book_id,
        channel=book.channel,
        currency=book.currency,
        created_at=book.created_at,
        created_by=book.created_by,
        versions=[_summary(row) for row in repo.list_versions(conn, book_id)],
    )


AUDITED_PRICES = ("base_price", "floor_price", "unit_cost", "promotions")


def _version_state(view: VersionView) -> dict[str, JsonValue]:
    """A version as the audit log keeps it: everything but its entries, which it counts (a
    book's entries are recorded as what changed, so an entry grows with the change, not the
    book)."""
    state: dict[str, JsonValue] = view.model_dump(mode="json", exclude={"entries"})
    state["entry_count"] = len(view.entries)
    return state


def _entry_changes(before: Sequence[EntryView], after: Sequence[EntryView]) -> dict[str, JsonValue]:
    """What changed from one set of entries to another, by SKU: SKUs added (with their prices),
    removed (with the prices they had) and changed (the prices that differ, before and after).
    Prices are the base price, floor price, unit cost and promotions; when a base price was read
    from the ERP is not a change."""
    old = {e.sku: e.model_dump(mode="json", include=set(AUDITED_PRICES)) for e in before}
    new = {e.sku: e.model_dump(mode="json", include=set(AUDITED_PRICES)) for e in after}
    changed: list[JsonValue] = []
    for sku in sorted(old.keys() & new.keys()):
        fields = [f for f in AUDITED_PRICES if old[sku][f] != new[sku][f]]
        if fields:
            changed.append(
                {
                    "sku": sku,
                    "before": {f: old[sku][f] for f in fields},
                    "after": {f: new[sku][f] for f in fields},
                }
            )
    return {
        "added": [{"sku": sku, **new[sku]} for sku in sorted(new.keys() - old.keys())],
        "removed": [{"sku": sku, **old[sku]} for sku in sorted(old.keys() - new.keys())],
        "changed": changed,
    }


def _audit(
    uow: UnitOfWork,
    actor: str,
    action: str,
    book_id: str,
    channel: str,
    before: BaseModel | dict[str, JsonValue] | None,
    after: BaseModel | dict[str, JsonValue] | None,
) -> None:
    """The change in the audit log, in the transaction that makes it."""
    audit.record(
        uow,
        actor=actor,
        action=action,
        subject=f"price_book/{book_id}",
        channel=channel,
        before=before.model_dump(mode="json") if isinstance(before, BaseModel) else before,
        after=after.model_dump(mode="json") if isinstance(after, BaseModel) else after,
    )
