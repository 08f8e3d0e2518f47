"""The inventory port: what the partner edge may ask of inventory governance, in-process or over
HTTP."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from contracts import ChannelAvailability

__all__ = ["MAX_SKUS_PER_QUERY", "InventoryPort"]

MAX_SKUS_PER_QUERY = 50
"""SKUs one availability query may name."""


class InventoryPort(Protocol):
    """Availability as one sales channel sees it."""

    async def channel_availability(
        self, channel: str, skus: Sequence[str]
    ) -> list[ChannelAvailability]:
        """Available-to-sell of each SKU for the channel, as it would be published now (the
        channel profile's policy applied to on-hand and reserved), with the last value sent to
        the channel and when; one entry per distinct SKU, in the order asked.

        A SKU the warehouse never counted is 0, like any SKU out of stock, and a channel without
        a profile is offered nothing (0 everywhere): the gateway never publishes to it.
        """
        ...
