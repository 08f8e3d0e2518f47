"""The prices port: what the partner edge may ask of pricing, in-process or over HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from contracts.price import ChannelPrice

__all__ = ["MAX_SKUS_PER_PRICE_QUERY", "PricesPort"]

MAX_SKUS_PER_PRICE_QUERY = 50
"""SKUs one price query may name."""


class PricesPort(Protocol):
    """Prices as one sales channel sees them."""

    async def channel_prices(
        self, channel: str, skus: Sequence[str], at: datetime | None
    ) -> list[ChannelPrice]:
        """The price of each SKU on the channel at `at` (timezone-aware; None for now, by the
        gateway's clock): a promotion's price
        inside its [starts_at, ends_at) window, else the base price, from the channel's price
        book version in force at that instant; one entry per distinct SKU, in the order asked.

        A SKU without a published price, or a channel without a profile or price book, has a
        null price.
        """
        ...
