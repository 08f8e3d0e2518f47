"""Shared constrained types and the base model that every contract builds on."""

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

__all__ = [
    "MAX_LINE_QUANTITY",
    "ChannelCode",
    "ContractModel",
    "CountryCode",
    "CurrencyCode",
    "Identifier",
    "LineId",
    "Quantity",
    "Sku",
    "UtcDateTime",
    "ensure_unique",
    "ensure_utc",
]

MAX_LINE_QUANTITY = 1_000_000


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ContractModel(BaseModel):
    """Base of every contract: immutable, strict about unknown fields, and free of control
    characters in text (tab and line breaks aside), which no system of record should receive."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str) and _CONTROL_CHARACTERS.search(value):
            raise ValueError("text must not contain control characters")
        return value


def ensure_utc(value: datetime) -> datetime:
    """Reject naive datetimes and convert aware ones to UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("datetime must be timezone-aware (e.g. 2024-05-01T12:00:00Z)")
    return value.astimezone(UTC)


def _not_a_number(value: Any) -> Any:
    """Times travel as RFC 3339 strings; a bare number is refused, not read as epoch seconds."""
    if isinstance(value, int | float):
        raise ValueError("a date-time must be an RFC 3339 string, e.g. 2024-05-01T12:00:00Z")
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(ensure_utc)]
"""A timezone-aware datetime, normalised to UTC; naive values are rejected."""

Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"),
]
"""Stock keeping unit: 1..64 chars, letters, digits, dot, underscore, hyphen."""

Quantity = Annotated[int, Field(gt=0, le=MAX_LINE_QUANTITY)]
"""A line quantity: a positive whole number of units, at most one million."""

LineId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
"""Identifier of a line within its document (order, shipment, return...)."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
"""An opaque identifier issued by this gateway or by a partner system."""

ChannelCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
]
"""Sales channel code, lower case, e.g. ``webshop`` or ``amazon_de``."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 alphabetic currency code, e.g. ``EUR``."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 country code, e.g. ``DE``."""


def ensure_unique(values: Iterable[str], what: str) -> None:
    """Raise ValueError naming the duplicates if any value occurs more than once."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for value in values:
        if value in seen and value not in duplicates:
            duplicates.append(value)
        seen.add(value)
    if duplicates:
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")
