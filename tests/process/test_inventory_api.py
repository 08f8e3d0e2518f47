"""The inventory process API: warehouse counts in, availability per channel out, sync lag."""

from __future__ import annotations

from datetime import timedelta

import httpx

from contracts.channel import AvailabilityMode, AvailabilityPolicy, ChannelProfile
from gateway import Gateway
from gateway_infra.clock import ManualClock


async def test_counts_become_availability_per_channel_and_publications_await_confirmation(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await gateway.channels.seed(
        [
            ChannelProfile(channel="webshop", name="Webshop", currency="EUR"),
            ChannelProfile(
                channel="marketplace",
                name="Marketplace",
                currency="EUR",
                availability=AvailabilityPolicy(
                    mode=AvailabilityMode.PERCENTAGE, percentage=50, buffer=2
                ),
            ),
        ],
        actor="test",
    )

    taken = await client.post(
        "/process/v1/inventory/counts",
        json={"as_of": clock.now().isoformat(), "counts": [{"sku": "MUG-RED-350", "on_hand": 12}]},
    )
    view = (await client.get("/process/v1/inventory/MUG-RED-350")).json()
    clock.advance(timedelta(minutes=3))
    lagging = (await client.get("/process/v1/inventory/publications/marketplace")).json()
    confirmed = await client.post(
        "/process/v1/inventory/publications/marketplace/confirmations",
        json={"skus": ["MUG-RED-350"], "confirmed_at": clock.now().isoformat()},
    )
    synced = (await client.get("/process/v1/inventory/publications/marketplace")).json()

    assert taken.status_code == 200, taken.text
    assert taken.json() == {"changed": ["MUG-RED-350"]}
    assert view["on_hand"] == 12
    assert view["reserved"] == 0
    assert view["available"] == {"marketplace": 5, "webshop": 12}
    assert lagging["sync_lag_seconds"] == 180.0
    assert confirmed.status_code == 204
    assert synced["sync_lag_seconds"] is None
