"""Recently answered channel availability, kept for a short time per (channel, SKU).

Partners poll availability far more often than stock changes. An answer is reused while no write
transaction of this process has ended since it was read (`Database.write_generation`) and for at
most `max_age_seconds`; the age bounds how long a change made by another replica (or another
process on the same database) can stay unseen here. Each entry keeps the `as_of` of the read that
produced it, so a reused answer says how old it is. docs/decisions/0016.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from contracts import ChannelAvailability

MAX_ENTRIES = 50_000
"""(channel, SKU) entries kept at most; the least recently used go first."""


class AvailabilityReadCache:
    """Per (channel, SKU): the last answer, the write generation it was read at and when."""

    def __init__(self, max_age_seconds: float, *, max_entries: int = MAX_ENTRIES) -> None:
        self.max_age_seconds = max_age_seconds
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[ChannelAvailability, int, float]] = (
            OrderedDict()
        )

    @property
    def enabled(self) -> bool:
        return self.max_age_seconds > 0

    def get(
        self, channel: str, skus: Sequence[str], generation: int
    ) -> list[ChannelAvailability] | None:
        """The answer for every distinct SKU in the order asked, or None if any is missing/stale."""
        if not self.enabled:
            return None
        oldest = time.monotonic() - self.max_age_seconds
        entries = self._entries
        answer: list[ChannelAvailability] = []
        for sku in dict.fromkeys(skus):
            key = (channel, sku)
            entry = entries.get(key)
            if entry is None or entry[1] != generation or entry[2] < oldest:
                return None
            entries.move_to_end(key)
            answer.append(entry[0])
        return answer

    def put(self, entries: Sequence[ChannelAvailability], generation: int, read_at: float) -> None:
        """Keep the answers of one read, made at `read_at` (time.monotonic) and `generation`."""
        if not self.enabled:
            return
        for entry in entries:
            self._entries[(entry.channel, entry.sku)] = (entry, generation, read_at)
            self._entries.move_to_end((entry.channel, entry.sku))
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
