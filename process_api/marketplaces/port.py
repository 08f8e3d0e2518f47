"""The marketplace-adapter port: what the gateway asks of every marketplace it pulls from and
pushes to (one adapter per marketplace protocol; marketplaces that call us use the partner API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class SyncReport:
    """What one round of an adapter did, for logs and tests."""

    orders_seen: int = 0
    orders_created: int = 0
    orders_cancelled: int = 0
    cancellations_sent: int = 0
    packages_confirmed: int = 0
    availability_sent: int = 0
    prices_sent: int = 0
    feeds_finished: int = 0
    confirmations: int = 0
    exceptions: list[str] = field(default_factory=list)


class MarketplaceAdapter(Protocol):
    """One marketplace protocol turned into the canonical workflows."""

    channel: str

    async def pull_orders(self) -> SyncReport:
        """Fetch orders changed since the durable cursor and map them to canonical orders."""
        ...

    async def confirm_shipments(self) -> SyncReport:
        """Tell the marketplace about packages the warehouse confirmed, once per package."""
        ...

    async def push_listings(self) -> SyncReport:
        """Send availability and price changes not yet confirmed by the marketplace."""
        ...

    async def track_submissions(self) -> SyncReport:
        """Follow submitted documents until the marketplace reports per-item results."""
        ...

    async def aclose(self) -> None: ...
