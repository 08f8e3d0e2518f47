"""Concurrent callers asking for the same thing share one call (on one event loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """While a call for a key runs, callers of the same key await it instead of calling again.

    The call runs as a task of its own: a caller that is cancelled leaves it running for the
    others. Its result or error goes to every caller; the key is free again once it ends.
    """

    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, call: Callable[[], Awaitable[V]]) -> V:
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(call())
            self._running[key] = running
            running.add_done_callback(lambda _done: self._running.pop(key, None))
        return await asyncio.shield(running)
