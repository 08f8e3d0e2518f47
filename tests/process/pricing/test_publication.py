"""Publishing a version sends each change to the channel its lead time before it takes effect,
through the scheduler; the channel confirms; a promotion unconfirmed at its start is an
exception."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.process.pricing.support import (
    LEAD,
    MUG,
    TEE,
    entry,
    price_events,
    promotion,
    published_book,
    seed_channels_and_products,
    version_url,
)

DAY = timedelta(days=1)
MICROSECOND = timedelta(microseconds=1)


def z(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def changes(published: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (c["sku"], c["change"], c["promotion_id"], c["send_at"], c["state"])
        for c in published["changes"]
    ]


async def pricing_exceptions(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/process/v1/exceptions", params={"workflow": "pricing"})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_each_change_is_sent_its_lead_time_before_it_takes_effect(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    now = clock.now()
    start, end = now + 2 * DAY, now + 5 * DAY

    _, published = await published_book(
        client, entry(MUG, promotion("SPRING", "9.90", start, end)), entry(TEE)
    )

    assert changes(published) == [
        (MUG, "base_price", None, z(now), "sent"),
        (MUG, "promotion", "SPRING", z(start - LEAD), "scheduled"),
        (TEE, "base_price", None, z(now), "sent"),
    ]
    sent = price_events(gateway)
    assert [(e["sku"], e["change"], e["base_price"]) for e in sent] == [
        (MUG, "base_price", "12.90"),
        (TEE, "base_price", "19.90"),
    ]
    assert {e["channel_of_event"] for e in sent} == {"webshop"}

    clock.set(start - LEAD - MICROSECOND)
    assert await gateway.scheduler.run_due() == 0
    assert len(price_events(gateway)) == 2

    clock.set(start - LEAD)
    assert await gateway.scheduler.run_due() == 1
    [*_, spring] = price_events(gateway)
    assert spring["change"] == "promotion"
    assert spring["promotion"] == {
        "promotion_id": "SPRING",
        "price": "9.90",
        "starts_at": start.isoformat(),
        "ends_at": end.isoformat(),
    }
    assert datetime.fromisoformat(spring["effective_at"]) == start


async def test_confirmed_changes_leave_nothing_waiting_and_no_exception_at_the_start(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    published_at = clock.now()
    start = published_at + 2 * DAY
    await published_book(
        client, entry(MUG, promotion("SPRING", "9.90", start, start + DAY)), entry(TEE)
    )
    status_url = "/process/v1/price-publications/webshop"

    before = (await client.get(status_url)).json()
    clock.set(start - LEAD)
    await gateway.scheduler.run_due()
    waiting = (await client.get(status_url)).json()
    confirmed = await client.post(
        f"{status_url}/confirmations",
        json={"skus": [MUG, TEE], "confirmed_at": clock.now().isoformat()},
    )
    after = (await client.get(status_url)).json()
    clock.set(start)
    ran = await gateway.scheduler.run_due()

    assert (before["scheduled"], before["awaiting_confirmation"]) == (1, 2)
    assert (waiting["scheduled"], waiting["awaiting_confirmation"]) == (0, 3)
    assert waiting["oldest_unconfirmed_sent_at"] == z(published_at)
    assert waiting["sync_lag_seconds"] == (start - LEAD - published_at).total_seconds()
    assert confirmed.json() == {"confirmed": 3}
    assert (after["awaiting_confirmation"], after["sync_lag_seconds"]) == (0, None)
    assert ran == 1  # the start check, satisfied
    assert await pricing_exceptions(client) == []


async def test_a_promotion_the_channel_has_not_confirmed_at_its_start_is_an_exception(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    # The warehouse counts 10 mugs: 10 are listed on the webshop.
    await gateway.inventory.report_on_hand_many({MUG: 10}, clock.now())
    start = clock.now() + 2 * DAY
    book_id, _ = await published_book(
        client, entry(MUG, promotion("SPRING", "9.90", start, start + DAY))
    )
    # The channel confirms the base price at once; the promotion is sent later.
    early = await client.post(
        "/process/v1/price-publications/webshop/confirmations",
        json={"skus": [MUG], "confirmed_at": clock.now().isoformat()},
    )
    clock.set(start - LEAD)
    await gateway.scheduler.run_due()

    clock.set(start - MICROSECOND)
    assert await gateway.scheduler.run_due() == 0
    assert await pricing_exceptions(client) == []
    clock.set(start)
    assert await gateway.scheduler.run_due() == 1

    assert early.json() == {"confirmed": 1}
    [raised] = await pricing_exceptions(client)
    assert (raised["code"], raised["channel"], raised["status"]) == (
        "promotion_unconfirmed",
        "webshop",
        "open",
    )
    assert raised["subject"] == f"price/webshop/{MUG}/SPRING"
    # 3.00 EUR between base and promotional price, on each of the 10 listed units.
    assert raised["money_at_risk"] == {"amount": "30.00", "currency": "EUR"}
    assert raised["object_ids"] == {
        "sku": MUG,
        "promotion_id": "SPRING",
        "book_id": book_id,
        "version": "1",
    }
    # The channel confirms it late: the exception resolves itself.
    late = await client.post(
        "/process/v1/price-publications/webshop/confirmations",
        json={"skus": [MUG], "confirmed_at": (start + timedelta(hours=1)).isoformat()},
    )
    assert late.json() == {"confirmed": 1}
    [resolved] = await pricing_exceptions(client)
    assert resolved["status"] == "resolved"


async def test_a_promotion_changed_or_withdrawn_before_it_was_sent_never_reaches_the_channel(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    now = clock.now()
    spring, autumn = now + 2 * DAY, now + 10 * DAY
    book_id, _ = await published_book(
        client,
        entry(
            MUG,
            promotion("SPRING", "9.90", spring, spring + DAY),
            promotion("AUTUMN", "10.90", autumn, autumn + DAY),
        ),
    )
    assert (await client.post(f"/process/v1/price-books/{book_id}/versions")).status_code == 201
    edited = await client.put(
        f"{version_url(book_id, 2)}/entries/{MUG}",
        json={"promotions": [promotion("SPRING", "8.90", spring, spring + DAY)]},
    )
    assert edited.status_code == 200, edited.text

    response = await client.post(f"{version_url(book_id, 2)}/publish")

    assert response.status_code == 200, response.text
    assert changes(response.json()) == [
        (MUG, "promotion", "SPRING", z(spring - LEAD), "scheduled"),
    ]
    clock.set(autumn + DAY)
    while await gateway.scheduler.run_due():
        pass
    promotions = [e for e in price_events(gateway) if e["change"] != "base_price"]
    assert [(e["change"], e["promotion"]["price"], e["version"]) for e in promotions] == [
        ("promotion", "8.90", 2)
    ]
    [raised] = await pricing_exceptions(client)  # SPRING, sent and never confirmed; not AUTUMN
    assert raised["object_ids"]["promotion_id"] == "SPRING"
    assert raised["object_ids"]["version"] == "2"


async def test_withdrawing_a_promotion_the_channel_has_is_sent_at_once_and_ends_its_check(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    start = clock.now() + 2 * DAY
    book_id, _ = await published_book(
        client, entry(MUG, promotion("SPRING", "9.90", start, start + DAY))
    )
    clock.set(start - LEAD)
    await gateway.scheduler.run_due()
    assert (await client.post(f"/process/v1/price-books/{book_id}/versions")).status_code == 201
    emptied = await client.put(f"{version_url(book_id, 2)}/entries/{MUG}", json={})
    assert emptied.status_code == 200, emptied.text

    response = await client.post(f"{version_url(book_id, 2)}/publish")

    assert changes(response.json()) == [
        (MUG, "promotion_withdrawn", "SPRING", z(clock.now()), "sent")
    ]
    assert price_events(gateway)[-1]["change"] == "promotion_withdrawn"
    clock.set(start)
    assert await gateway.scheduler.run_due() == 0
    assert await pricing_exceptions(client) == []
