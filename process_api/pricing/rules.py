"""The channel's price rules applied to price book entries, and the changes a version sends.

Pure functions of their inputs (no I/O): every violation is listed, never only the first.

Rules of one promotion (its duration and the lead time) apply to promotions that are new or
changed against the version published now; a promotion the channel already has stays as it is.
Rules of the set (count, overlaps) and of the price (floor, minimum margin) apply to every
promotion that has not ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from contracts.channel import PriceRules
from contracts.common import ensure_utc
from contracts.money import Money, minor_unit_exponent
from contracts.price import Promotion
from process_api.pricing.models import ChangeKind, Entry, Violation

_LATEST = datetime.max.replace(tzinfo=None)


class PromotionLike(Protocol):
    @property
    def promotion_id(self) -> str: ...
    @property
    def price(self) -> Money: ...
    @property
    def starts_at(self) -> datetime: ...
    @property
    def ends_at(self) -> datetime: ...


@dataclass(frozen=True)
class Candidate:
    """An entry as it would be stored: its ERP base price (or why there is none)."""

    sku: str
    base_price: Money | None
    base_price_issue: str | None
    floor_price: Money | None
    unit_cost: Money | None
    promotions: Sequence[PromotionLike]


def later(at: datetime, delta: timedelta) -> datetime:
    """at + delta, or the latest representable instant when that overflows."""
    try:
        return at + delta
    except OverflowError:
        return _LATEST.replace(tzinfo=at.tzinfo)


def earlier(at: datetime, delta: timedelta) -> datetime:
    try:
        return at - delta
    except OverflowError:
        return datetime.min.replace(tzinfo=at.tzinfo)


def same_promotion(a: PromotionLike, b: PromotionLike) -> bool:
    return (a.price, a.starts_at, a.ends_at) == (b.price, b.starts_at, b.ends_at)


def change_effective_at(old: PromotionLike | None, new: PromotionLike) -> datetime:
    """The first instant at which shoppers would see a difference between old and new."""
    if old is None:
        return new.starts_at
    if old.price != new.price or old.starts_at != new.starts_at:
        return min(old.starts_at, new.starts_at)
    return min(old.ends_at, new.ends_at)


def _whole_minor_units(money: Money) -> bool:
    scaled = money.amount.scaleb(minor_unit_exponent(money.currency))
    return scaled == scaled.to_integral_value()


def _margin_percent(price: Decimal, cost: Decimal) -> Decimal:
    return (price - cost) / price * 100


def check_entries(
    candidates: Sequence[Candidate],
    *,
    currency: str,
    rules: PriceRules,
    now: datetime,
    published: Mapping[str, Entry],
    pointer: str = "#/entries",
    single: bool = False,
) -> list[Violation]:
    """Every violation of the channel's rules by the candidates, in entry and promotion order.

    Pointers are `{pointer}/{i}/...` per entry (or `{pointer}/...` for a single entry); the
    published entries tell which promotions are new or changed.
    """
    violations: list[Violation] = []
    seen: set[str] = set()
    for index, candidate in enumerate(candidates):
        at = pointer if single else f"{pointer}/{index}"
        if candidate.sku in seen:
            violations.append(
                Violation(f"{at}/sku", "duplicate_sku", "the SKU is listed twice", candidate.sku)
            )
        seen.add(candidate.sku)
        violations += _check_entry(
            candidate,
            at=at,
            currency=currency,
            rules=rules,
            now=now,
            previous=published.get(candidate.sku),
        )
    return violations


def _check_entry(
    entry: Candidate,
    *,
    at: str,
    currency: str,
    rules: PriceRules,
    now: datetime,
    previous: Entry | None,
) -> list[Violation]:
    sku = entry.sku
    found: list[Violation] = []

    def add(where: str, code: str, detail: str, promotion_id: str | None = None) -> None:
        found.append(Violation(f"{at}{where}", code, detail, sku, promotion_id))

    if entry.base_price_issue is not None:
        add("/sku", "no_base_price", entry.base_price_issue)
    elif entry.base_price is not None and not _whole_minor_units(entry.base_price):
        add(
            "/sku",
            "base_price_precision",
            f"the ERP's base price {entry.base_price} is finer than the currency's minor unit; "
            "channels cannot show it",
        )
    for field, money in (("floor_price", entry.floor_price), ("unit_cost", entry.unit_cost)):
        if money is not None and money.currency != currency:
            add(f"/{field}", "currency_mismatch", f"must be in {currency}, not {money.currency}")
    floor = entry.floor_price if _usable(entry.floor_price, currency) else None
    cost = entry.unit_cost if _usable(entry.unit_cost, currency) else None
    old_promotions = {p.promotion_id: p for p in (previous.promotions if previous else ())}
    lead = rules.publication_lead_time
    earliest = later(now, lead)
    ids: set[str] = set()
    live: list[tuple[int, PromotionLike]] = []
    needs_cost = False
    for j, promotion in enumerate(entry.promotions):
        where, pid = f"/promotions/{j}", promotion.promotion_id
        if pid in ids:
            add(f"{where}/promotion_id", "duplicate_promotion", "listed twice for the SKU", pid)
            continue
        ids.add(pid)
        price = promotion.price
        price_ok = True
        if price.currency != currency:
            add(f"{where}/price", "currency_mismatch", f"must be in {currency}", pid)
            price_ok = False
        elif price.amount <= 0:
            add(f"{where}/price", "price_not_positive", "a promotional price must be above 0", pid)
            price_ok = False
        elif not _whole_minor_units(price):
            add(
                f"{where}/price",
                "price_precision",
                f"{price} is finer than the currency's minor unit",
                pid,
            )
        if promotion.ends_at <= promotion.starts_at:
            add(f"{where}/ends_at", "empty_window", "ends_at must be after starts_at", pid)
            continue
        old = old_promotions.get(pid)
        if old is None or not same_promotion(old, promotion):
            duration = promotion.ends_at - promotion.starts_at
            if duration > rules.max_promotion_duration:
                add(
                    f"{where}/ends_at",
                    "promotion_too_long",
                    f"lasts {duration}; the channel allows at most {rules.max_promotion_duration}",
                    pid,
                )
            effective = change_effective_at(old, promotion)
            if effective < earliest:
                field = "ends_at" if _only_end_moved(old, promotion) else "starts_at"
                add(
                    f"{where}/{field}",
                    "promotion_late",
                    f"the change takes effect at {effective.isoformat()}, less than the channel's "
                    f"lead time ({lead}) from now; the earliest possible is "
                    f"{earliest.isoformat()}",
                    pid,
                )
        if promotion.ends_at <= now:
            continue  # over: history, not something the channel still shows
        live.append((j, promotion))
        if price_ok and floor is not None and price.amount < floor.amount:
            add(f"{where}/price", "below_floor_price", f"{price} is below the floor {floor}", pid)
        minimum = rules.minimum_margin_percent
        if price_ok and minimum is not None:
            if cost is None:
                needs_cost = True
            elif price.amount > 0 and _margin_percent(price.amount, cost.amount) < minimum:
                margin = _margin_percent(price.amount, cost.amount).quantize(Decimal("0.01"))
                add(
                    f"{where}/price",
                    "below_minimum_margin",
                    f"margin {margin}% over the unit cost {cost}; the channel needs {minimum}%",
                    pid,
                )
    if needs_cost:
        add(
            "/unit_cost",
            "unit_cost_required",
            f"the channel needs a margin of {rules.minimum_margin_percent}%: give the unit cost",
        )
    if len(live) > rules.max_promotions_per_sku:
        add(
            "/promotions",
            "too_many_promotions",
            f"{len(live)} current or future promotions; the channel allows "
            f"{rules.max_promotions_per_sku} per SKU",
        )
    if not rules.allow_overlapping_promotions:
        ordered = sorted(live, key=lambda item: (item[1].starts_at, item[0]))
        for k, (j, promotion) in enumerate(ordered):
            for _i, other in ordered[:k]:
                if other.starts_at < promotion.ends_at and promotion.starts_at < other.ends_at:
                    add(
                        f"/promotions/{j}/starts_at",
                        "promotions_overlap",
                        f"[{promotion.starts_at.isoformat()}, {promotion.ends_at.isoformat()}) "
                        f"overlaps promotion {other.promotion_id!r} "
                        f"[{other.starts_at.isoformat()}, {other.ends_at.isoformat()})",
                        promotion.promotion_id,
                    )
    return sorted(found, key=lambda v: _order(v.pointer))


def _only_end_moved(old: PromotionLike | None, new: PromotionLike) -> bool:
    return old is not None and (old.price, old.starts_at) == (new.price, new.starts_at)


def _usable(money: Money | None, currency: str) -> bool:
    return money is not None and money.currency == currency


def _order(pointer: str) -> tuple[object, ...]:
    """Pointers in document order: numeric segments compare as numbers."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pointer.split("/"))


# ---------------------------------------------------------------- changes to send


@dataclass(frozen=True)
class PlannedChange:
    """One thing the channel must be told, and when it matters."""

    sku: str
    change: ChangeKind
    effective_at: datetime
    promotion_id: str | None = None
    base_price: Money | None = None
    promotion: PromotionLike | None = None
    starts_check: bool = False
    """A new or moved promotion start: check the channel confirmed it by then."""


def plan_changes(
    previous: Mapping[str, Entry], current: Mapping[str, Entry], now: datetime
) -> list[PlannedChange]:
    """What publishing `current` over `previous` changes for the channel, SKU by SKU."""
    planned: list[PlannedChange] = []
    for sku in sorted(set(previous) | set(current)):
        old, new = previous.get(sku), current.get(sku)
        if new is None:
            assert old is not None
            planned.append(PlannedChange(sku, ChangeKind.ENTRY_REMOVED, now))
            continue
        if old is None or old.base_price != new.base_price:
            planned.append(
                PlannedChange(sku, ChangeKind.BASE_PRICE, now, base_price=new.base_price)
            )
        before = {p.promotion_id: p for p in (old.promotions if old else ())}
        after = {p.promotion_id: p for p in new.promotions}
        for pid, promotion in after.items():
            was = before.get(pid)
            if was is not None and same_promotion(was, promotion):
                continue
            if promotion.ends_at <= now and (was is None or was.ends_at <= now):
                continue  # over before and after: nothing a shopper can see
            planned.append(
                PlannedChange(
                    sku,
                    ChangeKind.PROMOTION,
                    max(change_effective_at(was, promotion), now),
                    promotion_id=pid,
                    promotion=promotion,
                    starts_check=promotion.starts_at > now,
                )
            )
        for pid, was in before.items():
            if pid not in after and was.ends_at > now:
                planned.append(
                    PlannedChange(sku, ChangeKind.PROMOTION_WITHDRAWN, now, promotion_id=pid)
                )
    return planned


# ---------------------------------------------------------------- the live price


def covering_promotion(promotions: Iterable[Promotion], at: datetime) -> Promotion | None:
    """The promotion in force at `at` (timezone-aware, any offset): the one whose window
    [starts_at, ends_at) holds it, start inclusive and end exclusive. Where windows overlap
    (a channel that allows it), the lowest price wins, then the earliest start, then the id."""
    instant = ensure_utc(at)
    covering = [p for p in promotions if p.starts_at <= instant < p.ends_at]
    return min(covering, key=lambda p: (p.price.amount, p.starts_at, p.promotion_id), default=None)
