"""Response shapes of the system API that are not canonical business objects."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts import Product
from gateway_infra.openapi import problem_responses

__all__ = ["ProductPage", "problem_responses"]


class ProductPage(BaseModel):
    """A page of item master records."""

    items: list[Product]
    next_after: str | None = Field(
        default=None, description="Pass as `after` to read the next page; absent on the last."
    )
