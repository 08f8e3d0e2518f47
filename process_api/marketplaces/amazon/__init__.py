"""The Amazon Selling Partner API adapter (see docs/amazon.md)."""

from __future__ import annotations

import asyncio

from gateway_infra.clock import Clock
from gateway_infra.unit_of_work import Store
from process_api.marketplaces.amazon.adapter import AmazonAdapter
from process_api.marketplaces.amazon.http import (
    AmazonError,
    HostNotAllowed,
    Sleep,
    SpApiClient,
    Throttled,
)
from process_api.marketplaces.amazon.profile import (
    AmazonProfile,
    LwaCredentials,
    load_amazon_profile,
)
from process_api.order_to_cash.service import OrderService

__all__ = [
    "AmazonAdapter",
    "AmazonError",
    "AmazonProfile",
    "HostNotAllowed",
    "LwaCredentials",
    "SpApiClient",
    "Throttled",
    "build_amazon_adapter",
    "load_amazon_profile",
]


def build_amazon_adapter(
    profile: AmazonProfile,
    credentials: LwaCredentials,
    *,
    store: Store,
    orders: OrderService,
    sleep: Sleep = asyncio.sleep,
) -> AmazonAdapter:
    """The adapter for one Amazon marketplace, with its own HTTP client."""
    clock: Clock = store.clock
    client = SpApiClient(profile, credentials, clock, sleep=sleep)
    return AmazonAdapter(profile, client, store, orders)
