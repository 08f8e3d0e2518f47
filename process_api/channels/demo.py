"""Demo channel profiles for `retail-gateway seed-demo`: the own webshop and a marketplace."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from contracts.channel import (
    AvailabilityMode,
    AvailabilityPolicy,
    ChannelProfile,
    PriceRules,
    RefundTiming,
)

DEMO_CHANNEL_PROFILES: tuple[ChannelProfile, ...] = (
    ChannelProfile(
        channel="webshop",
        name="Own webshop",
        currency="EUR",
        acknowledgement_deadline=timedelta(minutes=15),
        reserve_pending_orders=True,
        pending_reservation_expiry=timedelta(hours=1),
        availability=AvailabilityPolicy(mode=AvailabilityMode.SHARED_POOL, safety_stock=2),
        return_window=timedelta(days=30),
        refund_timing=RefundTiming.AFTER_INSPECTION,
        price_rules=PriceRules(publication_lead_time=timedelta(minutes=5)),
        throttling_tier="premium",
    ),
    ChannelProfile(
        channel="marketplace",
        name="Demo marketplace (Amazon-like)",
        currency="EUR",
        acknowledgement_deadline=timedelta(hours=4),
        reserve_pending_orders=True,
        pending_reservation_expiry=timedelta(days=21),
        availability=AvailabilityPolicy(
            mode=AvailabilityMode.PERCENTAGE,
            percentage=Decimal("80"),
            safety_stock=2,
            buffer=3,
            cap=50,
            floor=2,
        ),
        return_window=timedelta(days=30),
        refund_timing=RefundTiming.ON_RECEIPT,
        immediate_refund_limit=Decimal("20.00"),
        price_rules=PriceRules(
            publication_lead_time=timedelta(hours=4),
            max_promotions_per_sku=10,
            max_promotion_duration=timedelta(days=180),
            allow_overlapping_promotions=False,
        ),
        throttling_tier="standard",
    ),
)
"""Their tiers exist among the default settings.throttle_tiers (standard, premium, internal)."""
