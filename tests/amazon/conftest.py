"""The mock Amazon (Prism over Amazon's models, plus token endpoint and document store), started
once per session, and an Amazon adapter wired to it for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from contracts import Money
from contracts.channel import ChannelProfile
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.marketplaces.amazon import (
    AmazonAdapter,
    AmazonProfile,
    LwaCredentials,
    build_amazon_adapter,
)
from tests.amazon.mock_amazon import (
    CLIENT_ID,
    CLIENT_SECRET,
    MODELS,
    REFRESH_TOKEN,
    AmazonState,
    PrismServers,
    mock_amazon_app,
    models_folder,
)
from tests.conftest import UvicornThread, free_port, provisioned_database, skip_or_fail
from tests.factories import product, seed_products

CHANNEL = "amazon_us"
MARKETPLACE = "ATVPDKIKX0DER"
SELLER = "A2SELLER0TEST"
# The SKUs and prices of the searchOrders example in Amazon's Orders 2026-01-01 model.
ECHO, FIRE_TV = "ECHO-DOT-4-CHARCOAL", "FIRE-TV-4K-2021"


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only: the adapter's SQL runs on PostgreSQL in the end-to-end test, which asks for
    both; the rest of Amazon's tests would only repeat the same HTTP exchanges."""
    with provisioned_database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def amazon_models() -> Path:
    folder = models_folder()
    if folder is None:
        skip_or_fail(
            "Amazon's SP-API models are missing: set AMAZON_SP_API_MODELS to the folder of "
            "amazon-sp-api (models/, schemas/), by default ../shared/vendor/amazon-sp-api"
        )
    assert folder is not None
    return folder


@pytest.fixture(scope="session")
def mock_amazon(
    amazon_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AmazonState]:
    """Prism per model and the mock Amazon in front of them, for the whole session."""
    try:
        prism = PrismServers(
            amazon_models,
            {prefix: free_port() for prefix in MODELS},
            tmp_path_factory.mktemp("prism"),
        )
    except (RuntimeError, OSError) as exc:
        skip_or_fail(f"Prism (npm @stoplight/prism-cli) could not be installed or run: {exc}")
        raise
    try:
        prism.wait_ready()
        state = AmazonState()
        server = UvicornThread(mock_amazon_app(state, prism.urls)).start()
        state.base_url = server.url
        try:
            yield state
        finally:
            server.stop()
    finally:
        prism.stop()


@pytest.fixture
def amazon(mock_amazon: AmazonState) -> AmazonState:
    mock_amazon.reset()
    return mock_amazon


class RecordedSleep:
    """Waits of the adapter, recorded and passed on to the manual clock instead of slept."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


@pytest.fixture
def sleeps(clock: ManualClock) -> RecordedSleep:
    return RecordedSleep(clock)


def amazon_profile(state: AmazonState, **overrides: Any) -> AmazonProfile:
    values: dict[str, Any] = {
        "channel": CHANNEL,
        "marketplace_id": MARKETPLACE,
        "seller_id": SELLER,
        "endpoint": state.base_url,
        "token_url": f"{state.base_url}/auth/o2/token",
        "listings_via": "feed",
        "carrier_codes": {"ups": "UPS"},
        "backoff_base_seconds": 1.0,
        "max_attempts": 3,
        "max_pages_per_round": 2,
    }
    values.update(overrides)
    return AmazonProfile.model_validate(values)


CREDENTIALS = LwaCredentials(
    client_id=CLIENT_ID,
    client_secret=CLIENT_SECRET,
    refresh_token=REFRESH_TOKEN,
)


@pytest.fixture
async def adapter(
    gateway: Gateway, amazon: AmazonState, sleeps: RecordedSleep
) -> AsyncIterator[AmazonAdapter]:
    """The adapter of channel amazon_us (USD), whose ERP knows the example order's SKUs."""
    await gateway.channels.seed(
        [ChannelProfile(channel=CHANNEL, name="Amazon US", currency="USD")], actor="test"
    )
    seed_products(
        gateway,
        *(
            product(sku, "49.99", list_price=Money(amount="49.99", currency="USD"))
            for sku in (ECHO, FIRE_TV)
        ),
        on_hand=10,
    )
    built = build_amazon_adapter(
        amazon_profile(amazon),
        CREDENTIALS,
        store=gateway.store,
        orders=gateway.orders,
        sleep=sleeps,
    )
    yield built
    await built.aclose()


def no_violations(state: AmazonState) -> None:
    """Prism found every request the adapter sent valid against Amazon's models."""
    assert state.requests, "the adapter sent nothing to Prism"
    invalid = [(r.method, r.path, r.violations) for r in state.requests if r.violations]
    assert invalid == []
