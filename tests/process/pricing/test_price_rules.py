"""Entries of a price book are checked against the channel's price rules, and every violation
is listed with a pointer, never only the first; base prices are the ERP's."""

from __future__ import annotations

from datetime import timedelta

import httpx

from contracts.channel import ChannelProfile, PriceRules
from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import product, seed_products
from tests.process.pricing.support import (
    LEAD,
    MUG,
    TEE,
    create_book,
    entry,
    pointers,
    promotion,
    put_entries,
    seed_channels_and_products,
    version_url,
)

DAY = timedelta(days=1)


async def test_overlapping_late_and_long_promotions_are_refused_with_every_reason(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client)
    now = clock.now()

    response = await put_entries(
        client,
        book_id,
        1,
        entry(
            MUG,
            promotion("LATE", "9.90", now + timedelta(hours=1), now + 2 * DAY),
            promotion("A", "10.90", now + DAY, now + 5 * DAY),
            promotion("B", "10.50", now + 4 * DAY, now + 10 * DAY),
            promotion("LONG", "11.90", now + 20 * DAY, now + 60 * DAY),
        ),
        entry(
            TEE,
            promotion("CHEAP", "5.00", now + DAY, now + 2 * DAY),
            promotion("EMPTY", "15.00", now + 3 * DAY, now + 3 * DAY),
            floor_price={"amount": "8.00", "currency": "EUR"},
        ),
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/price-rules-violated"
    assert pointers(problem) == [
        ("#/entries/0/promotions", "too_many_promotions"),
        ("#/entries/0/promotions/0/starts_at", "promotion_late"),
        ("#/entries/0/promotions/1/starts_at", "promotions_overlap"),
        ("#/entries/0/promotions/2/starts_at", "promotions_overlap"),
        ("#/entries/0/promotions/3/ends_at", "promotion_too_long"),
        ("#/entries/1/promotions/0/price", "below_floor_price"),
        ("#/entries/1/promotions/1/ends_at", "empty_window"),
    ]
    overlaps = [v for v in problem["violations"] if v["code"] == "promotions_overlap"]
    assert [(v["promotion_id"], "'LATE'" in v["detail"]) for v in overlaps] == [
        ("A", True),
        ("B", False),
    ]
    assert {e["pointer"] for e in problem["errors"]} == {v[0] for v in pointers(problem)}
    stored = await client.get(version_url(book_id))
    assert stored.json()["entries"] == []


async def test_a_promotion_starting_exactly_one_lead_time_ahead_is_on_time(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client)
    now = clock.now()

    on_time = await put_entries(
        client, book_id, 1, entry(MUG, promotion("P", "9.90", now + LEAD, now + DAY))
    )
    late = await put_entries(
        client,
        book_id,
        1,
        entry(MUG, promotion("P", "9.90", now + LEAD - timedelta(microseconds=1), now + DAY)),
    )

    assert on_time.status_code == 200, on_time.text
    assert late.status_code == 422
    assert pointers(late.json()) == [("#/entries/0/promotions/0/starts_at", "promotion_late")]


async def test_publishing_checks_again_and_lists_every_violation_of_the_rules_in_force(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client)
    now = clock.now()
    stored = await put_entries(
        client,
        book_id,
        1,
        entry(
            TEE,
            promotion("SOON", "15.90", now + 6 * timedelta(hours=1), now + DAY),
            promotion("LATER", "16.90", now + 2 * DAY, now + 3 * DAY),
        ),
        entry(MUG),
    )
    assert stored.status_code == 200, stored.text
    # Three hours pass, and the channel now takes one promotion per SKU.
    clock.advance(timedelta(hours=3))
    await gateway.channels.put(
        ChannelProfile(
            channel="webshop",
            name="Webshop",
            currency="EUR",
            price_rules=PriceRules(publication_lead_time=LEAD, max_promotions_per_sku=1),
        ),
        actor="test",
        expected_version=None,
    )

    report = await client.post(f"{version_url(book_id)}/validate")
    published = await client.post(f"{version_url(book_id)}/publish")

    expected = [
        ("#/entries/1/promotions", "too_many_promotions"),
        ("#/entries/1/promotions/0/starts_at", "promotion_late"),
    ]
    assert report.status_code == 200, report.text
    assert report.json()["valid"] is False
    assert [(v["pointer"], v["code"]) for v in report.json()["violations"]] == expected
    assert published.status_code == 422, published.text
    assert pointers(published.json()) == expected
    assert all(v["sku"] == TEE for v in published.json()["violations"])
    version = await client.get(version_url(book_id))
    assert version.json()["status"] == "draft"


async def test_a_minimum_margin_needs_the_unit_cost_and_holds_against_it(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client, "marketplace")
    now = clock.now()
    offer = promotion("P", "10.00", now + DAY, now + 2 * DAY)

    without_cost = await put_entries(client, book_id, 1, entry(MUG, offer))
    thin = await put_entries(
        client, book_id, 1, entry(MUG, offer, unit_cost={"amount": "9.00", "currency": "EUR"})
    )
    enough = await put_entries(
        client, book_id, 1, entry(MUG, offer, unit_cost={"amount": "8.00", "currency": "EUR"})
    )

    assert pointers(without_cost.json()) == [("#/entries/0/unit_cost", "unit_cost_required")]
    assert pointers(thin.json()) == [("#/entries/0/promotions/0/price", "below_minimum_margin")]
    assert "10.00%" in thin.json()["violations"][0]["detail"]
    assert enough.status_code == 200, enough.text


async def test_base_prices_come_from_the_erp_and_are_never_sent_by_callers(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client)

    typed_in = await put_entries(
        client, book_id, 1, entry(MUG, base_price={"amount": "1.00", "currency": "EUR"})
    )
    unknown = await put_entries(client, book_id, 1, entry(MUG), entry("NOT-IN-ERP"))
    stored = await put_entries(client, book_id, 1, entry(MUG))

    assert typed_in.status_code == 422
    assert [e["pointer"] for e in typed_in.json()["errors"]] == ["#/entries/0/base_price"]
    assert pointers(unknown.json()) == [("#/entries/1/sku", "no_base_price")]
    assert stored.json()["entries"][0]["base_price"] == {"amount": "12.90", "currency": "EUR"}

    # The ERP changes its list price before the version is published: the new one is published.
    seed_products(gateway, product(MUG, "11.90"))
    clock.advance(timedelta(minutes=5))
    published = await client.post(f"{version_url(book_id)}/publish")

    assert published.status_code == 200, published.text
    [mug] = published.json()["entries"]
    assert mug["base_price"] == {"amount": "11.90", "currency": "EUR"}
    assert mug["base_price_read_at"] == clock.now().isoformat().replace("+00:00", "Z")


async def test_times_need_an_offset_and_are_kept_in_utc(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client)
    offer = {
        "promotion_id": "P",
        "price": {"amount": "9.90", "currency": "EUR"},
        "starts_at": "2026-02-01T10:00:00",
        "ends_at": "2026-02-03T10:00:00+02:00",
    }

    naive = await put_entries(client, book_id, 1, {"sku": MUG, "promotions": [offer]})
    aware = await put_entries(
        client,
        book_id,
        1,
        {"sku": MUG, "promotions": [{**offer, "starts_at": "2026-02-01T10:00:00-05:00"}]},
    )

    assert naive.status_code == 422
    assert [e["pointer"] for e in naive.json()["errors"]] == ["#/entries/0/promotions/0/starts_at"]
    assert aware.status_code == 200, aware.text
    [stored] = aware.json()["entries"][0]["promotions"]
    assert (stored["starts_at"], stored["ends_at"]) == (
        "2026-02-01T15:00:00Z",
        "2026-02-03T08:00:00Z",
    )
