"""The Amazon adapter comes from configuration: a profile in settings and Login with Amazon
credentials from the environment; its sync round runs on the gateway's scheduler."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from contracts import Money
from gateway_infra.clock import ManualClock
from process_api.marketplaces.amazon import AmazonProfile
from tests.amazon.conftest import CHANNEL, ECHO, FIRE_TV, amazon_profile
from tests.amazon.mock_amazon import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, AmazonState
from tests.conftest import make_settings, start_gateway
from tests.factories import product, seed_products

# One worker runs them all, so Prism starts once per run.
pytestmark = [pytest.mark.amazon, pytest.mark.xdist_group("amazon")]


def test_a_profile_without_credentials_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="amazon_lwa_client_id"):
        make_settings("sqlite://", amazon_profile='{"channel": "amazon_us"}')


def test_only_configured_hosts_are_allowed() -> None:
    profile = AmazonProfile(
        channel="amazon_de",
        marketplace_id="A1PA6795UKMFR9",
        seller_id="S",
        endpoint="https://sellingpartnerapi-eu.amazon.com",
        document_hosts=["tortuga-prod-eu.s3-eu-west-1.amazonaws.com"],
    )

    assert profile.allowed_hosts() == {
        "sellingpartnerapi-eu.amazon.com:443",
        "api.amazon.com:443",
        "tortuga-prod-eu.s3-eu-west-1.amazonaws.com:443",
    }


async def test_the_configured_adapter_pulls_orders_in_its_scheduled_round(
    database_url: str, amazon: AmazonState, clock: ManualClock
) -> None:
    profile = amazon_profile(amazon, poll_seconds=60)
    settings = make_settings(
        database_url,
        amazon_profile=json.dumps(profile.model_dump(mode="json")),
        amazon_lwa_client_id=CLIENT_ID,
        amazon_lwa_client_secret=CLIENT_SECRET,
        amazon_lwa_refresh_token=REFRESH_TOKEN,
        channel_profiles=json.dumps([{"channel": CHANNEL, "name": "Amazon", "currency": "USD"}]),
    )
    gateway = start_gateway(settings, clock)
    try:
        await gateway.channels.seed(gateway.channel_profiles_config, actor="test")
        seed_products(
            gateway,
            *(
                product(sku, "49.99", list_price=Money(amount=Decimal("49.99"), currency="USD"))
                for sku in (ECHO, FIRE_TV)
            ),
        )
        [adapter] = gateway.marketplaces
        assert adapter.channel == CHANNEL
        for job in gateway.marketplace_jobs:
            await job.ensure_scheduled()

        clock.advance(timedelta(seconds=61))
        await gateway.scheduler.run_due()

        assert amazon.calls("GET", "/orders/2026-01-01/orders")
        page = await gateway.orders.list(channel=CHANNEL)
        assert [o.channel_order_id for o in page.items] == ["123-4567890-1234567"]
    finally:
        await gateway.aclose()
