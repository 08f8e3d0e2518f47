"""How hard and how long the gateway tries to deliver, and what it refuses: from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from gateway_infra.delivery.safety import AddressPolicy
from gateway_infra.scheduler import RetryPolicy
from gateway_infra.settings import Settings


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retries, dead-lettering, endpoint disabling, caps and leases of webhook delivery."""

    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            max_attempts=15, base_delay=timedelta(seconds=30), max_delay=timedelta(hours=2)
        )
    )
    max_age: timedelta = timedelta(hours=24)
    disable_after: timedelta = timedelta(days=3)
    timeout_seconds: float = 10.0
    max_response_bytes: int = 65_536
    max_in_flight_per_endpoint: int = 4
    sender_concurrency: int = 32
    lease: timedelta = timedelta(seconds=60)
    secret_overlap: timedelta = timedelta(hours=24)
    max_secret_overlap: timedelta = timedelta(days=7)
    max_subscriptions_per_channel: int = 10
    addresses: AddressPolicy = field(default_factory=AddressPolicy)

    def __post_init__(self) -> None:
        if self.lease.total_seconds() <= self.timeout_seconds:
            raise ValueError("the lease of a claimed delivery must outlast one attempt's timeout")

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            retry=RetryPolicy(
                max_attempts=settings.webhook_max_attempts,
                base_delay=timedelta(seconds=settings.webhook_retry_base_seconds),
                max_delay=timedelta(seconds=settings.webhook_retry_max_delay_seconds),
            ),
            max_age=timedelta(seconds=settings.webhook_max_age_seconds),
            disable_after=timedelta(seconds=settings.webhook_disable_after_seconds),
            timeout_seconds=settings.webhook_timeout_seconds,
            max_response_bytes=settings.webhook_max_response_bytes,
            max_in_flight_per_endpoint=settings.webhook_max_in_flight_per_endpoint,
            sender_concurrency=settings.webhook_sender_concurrency,
            lease=timedelta(seconds=settings.webhook_lease_seconds),
            secret_overlap=timedelta(seconds=settings.webhook_secret_overlap_seconds),
            addresses=AddressPolicy(allow_loopback=settings.webhook_allow_loopback),
        )
