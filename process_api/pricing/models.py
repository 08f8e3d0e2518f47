"""Price books: what callers send, what is stored, and what the process API answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, Field

from contracts.common import ChannelCode, ContractModel, CurrencyCode, Identifier, Sku, UtcDateTime
from contracts.money import Money
from contracts.price import Promotion

SOURCE = "process_api.pricing"
PRICE_CHANGED = "price.changed"
SEND_TIMER = "pricing.send_change"
START_CHECK_TIMER = "pricing.promotion_start_check"
MAX_ENTRIES_PER_REQUEST = 1000
MAX_PROMOTIONS_PER_ENTRY = 100


class VersionStatus(StrEnum):
    DRAFT = "draft"
    """Editable; nothing of it reaches a channel."""
    PUBLISHED = "published"
    """Immutable; its changes are sent to the channel, each lead time before it matters."""


class ChangeKind(StrEnum):
    """What one publication tells a channel."""

    BASE_PRICE = "base_price"
    PROMOTION = "promotion"
    PROMOTION_WITHDRAWN = "promotion_withdrawn"
    ENTRY_REMOVED = "entry_removed"


class PublicationState(StrEnum):
    SCHEDULED = "scheduled"
    """Waiting for its send time (effective time minus the channel's lead time)."""
    SENT = "sent"
    """Written to the outbox as price.changed; waiting for the channel's confirmation."""
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    """A later version changed or withdrew it before it was sent."""


# ---------------------------------------------------------------- what callers send

_SPACED_OFFSET = re.compile(r"^(\S+T\S+) (\d{2}(?::?\d{2})?)$")


_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d*)?\s*$")


def _restore_plus(value: Any) -> Any:
    """An offset's '+' arrives as a space when a query string was not percent-encoded
    (`at=2026-05-01T12:00:00+02:00`): read it as the '+' it was. A bare number (which would
    read as seconds since 1970) is refused, as in bodies."""
    if isinstance(value, str):
        if _NUMBER.match(value):
            raise ValueError("a date-time must be an RFC 3339 string, e.g. 2026-05-01T12:00:00Z")
        match = _SPACED_OFFSET.match(value.strip())
        if match:
            return f"{match.group(1)}+{match.group(2)}"
    return value


Instant = Annotated[UtcDateTime, BeforeValidator(_restore_plus)]
"""A timezone-aware instant in any offset, converted to UTC; naive times are refused."""


class PromotionIn(ContractModel):
    """A promotional price for the half-open window [starts_at, ends_at) (timezone-aware times,
    any offset; stored in UTC)."""

    promotion_id: Identifier = Field(description="Identifier of the promotion, unique per SKU.")
    price: Money = Field(description="Promotional unit price, in the price book's currency.")
    starts_at: Instant = Field(description="First instant the promotion applies (inclusive).")
    ends_at: Instant = Field(description="First instant it no longer applies (exclusive).")


class EntryBody(ContractModel):
    """A SKU's entry without its SKU (the path names it). The base price is not sent: it is the
    ERP's list price, read from the item master when the entry is written and again when the
    version is published."""

    floor_price: Money | None = Field(
        default=None, description="No promotion of this SKU may go below this unit price."
    )
    unit_cost: Money | None = Field(
        default=None,
        description=(
            "Unit cost the minimum margin of the channel's price rules is measured against; "
            "required for a SKU with promotions when the channel has a minimum margin."
        ),
    )
    promotions: list[PromotionIn] = Field(default_factory=list, max_length=MAX_PROMOTIONS_PER_ENTRY)


class EntryIn(EntryBody):
    """One SKU of a price book version."""

    sku: Sku


class EntriesIn(ContractModel):
    """Every entry of a draft version: replaces what the draft held."""

    entries: list[EntryIn] = Field(max_length=MAX_ENTRIES_PER_REQUEST)


class NewPriceBook(ContractModel):
    channel: ChannelCode
    currency: CurrencyCode | None = Field(
        default=None, description="Defaults to the currency of the channel's profile."
    )


class PublicationConfirmation(ContractModel):
    """A channel confirmed it shows the price changes sent to it for these SKUs."""

    skus: list[Sku] = Field(min_length=1, max_length=10_000)
    confirmed_at: Instant


# ---------------------------------------------------------------- what is stored


@dataclass(frozen=True)
class Entry:
    """A SKU's entry as stored in one version; promotions by start, then id."""

    sku: str
    base_price: Money
    base_price_read_at: datetime
    floor_price: Money | None
    unit_cost: Money | None
    promotions: tuple[Promotion, ...]


@dataclass(frozen=True)
class VersionRow:
    book_id: str
    channel: str
    currency: str
    version: int
    status: VersionStatus
    based_on: int | None
    created_at: datetime
    created_by: str
    published_at: datetime | None
    published_by: str | None


@dataclass(frozen=True)
class Violation:
    """One broken rule, with a JSON pointer into the request body or the version's entries."""

    pointer: str
    code: str
    detail: str
    sku: str
    promotion_id: str | None = None


# ---------------------------------------------------------------- what the API answers


class EntryView(BaseModel):
    sku: str
    base_price: Money = Field(description="The ERP's list price (the ERP owns base prices).")
    base_price_read_at: datetime = Field(description="When it was read from the ERP.")
    floor_price: Money | None
    unit_cost: Money | None
    promotions: list[Promotion] = Field(description="By start time, then promotion id.")


class VersionSummary(BaseModel):
    version: int
    status: VersionStatus
    based_on: int | None = Field(description="The published version the draft started from.")
    created_at: datetime
    created_by: str
    published_at: datetime | None
    published_by: str | None


class VersionView(VersionSummary):
    book_id: str
    channel: str
    currency: str
    entries: list[EntryView] = Field(description="By SKU.")


class PriceBookView(BaseModel):
    book_id: str
    channel: str
    currency: str
    created_at: datetime
    created_by: str
    versions: list[VersionSummary]


class ViolationView(BaseModel):
    pointer: str
    code: str
    detail: str
    sku: str
    promotion_id: str | None


class ValidationReport(BaseModel):
    book_id: str
    version: int
    valid: bool
    checked_at: datetime = Field(description="Lead times are measured from this instant.")
    violations: list[ViolationView]


class ScheduledChange(BaseModel):
    publication_id: int
    sku: str
    change: ChangeKind
    promotion_id: str | None
    effective_at: datetime = Field(description="When the change matters to shoppers.")
    send_at: datetime = Field(description="When it is sent to the channel (lead time before).")
    state: PublicationState


class PublishedVersion(VersionView):
    changes: list[ScheduledChange] = Field(
        description="What publishing this version sends to the channel, and when."
    )


class PublicationStatus(BaseModel):
    channel: str
    scheduled: int = Field(description="Changes waiting for their send time.")
    awaiting_confirmation: int = Field(description="Changes sent, not confirmed by the channel.")
    oldest_unconfirmed_sent_at: datetime | None
    sync_lag_seconds: float | None = Field(
        description="Age of the oldest sent change the channel has not confirmed."
    )


class ConfirmationResult(BaseModel):
    confirmed: int = Field(description="Sent changes this confirmation covers.")


def violation_views(violations: list[Violation]) -> list[ViolationView]:
    return [
        ViolationView(
            pointer=v.pointer, code=v.code, detail=v.detail, sku=v.sku, promotion_id=v.promotion_id
        )
        for v in violations
    ]
