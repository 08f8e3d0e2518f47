"""The live price of a SKU on a channel at an instant: the promotion's inside [start, end),
the base price outside, exact at both edges, whatever offset the instant is written in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import product, seed_products
from tests.process.pricing.support import (
    MUG,
    TEE,
    entry,
    promotion,
    published_book,
    seed_channels_and_products,
    version_url,
)

START = datetime(2026, 1, 3, tzinfo=UTC)
END = datetime(2026, 1, 5, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
BERLIN_SUMMER = timezone(timedelta(hours=2))
NEW_YORK = timezone(timedelta(hours=-5))
PREVIEW = f"/process/v1/prices/webshop/{MUG}"


async def price(client: httpx.AsyncClient, at: datetime | str | None = None) -> dict[str, Any]:
    params = {} if at is None else {"at": at if isinstance(at, str) else at.isoformat()}
    response = await client.get(PREVIEW, params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def amount(answer: dict[str, Any]) -> str:
    return str(answer["price"]["amount"])


async def spring_sale(client: httpx.AsyncClient) -> str:
    book_id, _ = await published_book(client, entry(MUG, promotion("SPRING", "9.90", START, END)))
    return book_id


async def test_the_promotion_applies_from_its_start_inclusive_to_its_end_exclusive(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await spring_sale(client)

    before = await price(client, START - MICROSECOND)
    first = await price(client, START)
    last = await price(client, END - MICROSECOND)
    after = await price(client, END)

    assert [amount(p) for p in (before, first, last, after)] == ["12.90", "9.90", "9.90", "12.90"]
    assert first == {
        "sku": MUG,
        "channel": "webshop",
        "at": "2026-01-03T00:00:00Z",
        "price": {"amount": "9.90", "currency": "EUR"},
        "base_price": {"amount": "12.90", "currency": "EUR"},
        "promotion": {
            "promotion_id": "SPRING",
            "price": {"amount": "9.90", "currency": "EUR"},
            "starts_at": "2026-01-03T00:00:00Z",
            "ends_at": "2026-01-05T00:00:00Z",
        },
        "book_id": book_id,
        "version": 1,
    }
    assert before["promotion"] is None


async def test_instants_in_any_offset_are_the_same_instants_in_utc(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    await spring_sale(client)

    start_in_berlin = await price(client, START.astimezone(BERLIN_SUMMER))
    before_in_new_york = await price(client, (START - MICROSECOND).astimezone(NEW_YORK))
    end_in_new_york = await price(client, END.astimezone(NEW_YORK))
    # A '+' the caller did not percent-encode arrives as a space; it is read as the '+'.
    unencoded = await client.get(f"{PREVIEW}?at=2026-01-03T02:00:00+02:00")

    assert start_in_berlin["at"] == "2026-01-03T00:00:00Z"
    assert amount(start_in_berlin) == "9.90"
    assert amount(before_in_new_york) == "12.90"
    assert before_in_new_york["at"] == "2026-01-02T23:59:59.999999Z"
    assert amount(end_in_new_york) == "12.90"
    assert unencoded.status_code == 200, unencoded.text
    assert amount(unencoded.json()) == "9.90"


async def test_without_an_instant_the_price_is_the_one_at_the_clocks_now(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    await spring_sale(client)

    clock.set(START - MICROSECOND)
    just_before = await price(client)
    clock.set(START)
    at_start = await price(client)
    clock.set(END - MICROSECOND)
    just_before_end = await price(client)
    clock.set(END)
    at_end = await price(client)

    assert [amount(p) for p in (just_before, at_start, just_before_end, at_end)] == [
        "12.90",
        "9.90",
        "9.90",
        "12.90",
    ]


async def test_a_naive_or_malformed_instant_is_refused(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    await spring_sale(client)

    for bad in ("2026-01-03T00:00:00", "yesterday", "1767398400"):
        response = await client.get(PREVIEW, params={"at": bad})
        assert response.status_code == 422, bad
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"][0]["parameter"] == "at"


async def test_the_price_comes_from_the_version_in_force_at_the_instant(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    first_published = clock.now()
    book_id, _ = await published_book(client, entry(MUG))
    seed_products(gateway, product(MUG, "11.90"))
    clock.advance(timedelta(hours=1))
    second_published = clock.now()
    assert (await client.post(f"/process/v1/price-books/{book_id}/versions")).status_code == 201
    assert (await client.post(f"{version_url(book_id, 2)}/publish")).status_code == 200

    before_any = await client.get(
        PREVIEW, params={"at": (first_published - MICROSECOND).isoformat()}
    )
    during_first = await price(client, second_published - MICROSECOND)
    from_second = await price(client, second_published)
    next_year = await price(client, second_published + timedelta(days=365))

    assert before_any.status_code == 404
    assert before_any.headers["content-type"] == "application/problem+json"
    assert (amount(during_first), during_first["version"]) == ("12.90", 1)
    assert (amount(from_second), from_second["version"]) == ("11.90", 2)
    assert (amount(next_year), next_year["version"]) == ("11.90", 2)


async def test_a_sku_or_channel_without_a_published_price_is_404(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    await spring_sale(client)

    other_sku = await client.get(f"/process/v1/prices/webshop/{TEE}")
    other_channel = await client.get(f"/process/v1/prices/marketplace/{MUG}")
    other_currency = await client.get(PREVIEW, params={"currency": "USD"})

    assert [r.status_code for r in (other_sku, other_channel, other_currency)] == [404] * 3
