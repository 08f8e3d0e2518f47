"""Errors of price books, answered as problem details."""

from __future__ import annotations

from gateway_infra.problems import CONFLICT, NOT_FOUND, VALIDATION_ERROR, ProblemError
from process_api.pricing.models import Violation
from process_api.problems import (
    PRICE_BOOK_DRAFT_OPEN,
    PRICE_BOOK_EXISTS,
    PRICE_BOOK_VERSION_PUBLISHED,
    PRICE_RULES_VIOLATED,
)


class PriceBookNotFound(ProblemError):
    def __init__(self, book_id: str, version: int | None = None) -> None:
        what = f"price book {book_id!r}" + ("" if version is None else f" version {version}")
        super().__init__(NOT_FOUND, f"no {what}")


class VersionPublished(ProblemError):
    """A published version is immutable: every edit of it is refused."""

    def __init__(self, book_id: str, version: int) -> None:
        super().__init__(
            PRICE_BOOK_VERSION_PUBLISHED,
            f"version {version} of price book {book_id} is published and never changes; "
            f"create a new version (POST /v1/price-books/{book_id}/versions)",
            book_id=book_id,
            version=version,
        )


class PriceBookExists(ProblemError):
    def __init__(self, book_id: str, channel: str, currency: str) -> None:
        super().__init__(
            PRICE_BOOK_EXISTS,
            f"channel {channel} has price book {book_id} in {currency}",
            book_id=book_id,
        )


class DraftOpen(ProblemError):
    def __init__(self, book_id: str, version: int) -> None:
        super().__init__(
            PRICE_BOOK_DRAFT_OPEN,
            f"price book {book_id} has draft version {version}: edit, publish or discard it",
            book_id=book_id,
            version=version,
        )


class PriceRulesViolated(ProblemError):
    """Every violation, each with a pointer; `errors` carries the same pointers in the shape of
    every validation problem."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__(
            PRICE_RULES_VIOLATED,
            f"{len(violations)} violation(s) of the channel's price rules",
            violations=[
                {
                    "pointer": v.pointer,
                    "code": v.code,
                    "detail": v.detail,
                    "sku": v.sku,
                    "promotion_id": v.promotion_id,
                }
                for v in violations
            ],
            errors=[{"pointer": v.pointer, "detail": f"{v.code}: {v.detail}"} for v in violations],
        )
        self.violations = violations


class NoChannelProfile(ProblemError):
    def __init__(self, channel: str) -> None:
        super().__init__(
            VALIDATION_ERROR,
            f"channel {channel!r} has no channel profile: its price rules are unknown",
            errors=[{"pointer": "#/channel", "detail": "no channel profile"}],
        )


class DraftChanged(ProblemError):
    def __init__(self, book_id: str, version: int) -> None:
        super().__init__(
            CONFLICT,
            f"draft {version} of price book {book_id} changed while it was being published; "
            "publish it again",
        )
