"""A published price book version never changes, neither through the API nor in the database;
a change of published prices is a new version."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, delete, insert, update
from sqlalchemy.exc import IntegrityError

from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.tables import price_book_versions, price_entries, price_promotions
from tests.process.pricing.support import (
    MUG,
    TEE,
    create_book,
    entry,
    promotion,
    published_book,
    put_entries,
    seed_channels_and_products,
    version_url,
)

DAY = timedelta(days=1)


async def test_every_edit_of_a_published_version_is_refused_and_it_stays_as_published(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    now = clock.now()
    book_id, _ = await published_book(
        client, entry(MUG, promotion("P", "9.90", now + DAY, now + 2 * DAY))
    )
    url = version_url(book_id)
    before = (await client.get(url)).json()

    attempts = [
        await put_entries(client, book_id, 1, entry(TEE)),
        await client.put(f"{url}/entries/{MUG}", json={"promotions": []}),
        await client.delete(f"{url}/entries/{MUG}"),
        await client.delete(url),
        await client.post(f"{url}/publish"),
    ]

    assert [a.status_code for a in attempts] == [409] * 5
    assert {a.json()["type"] for a in attempts} == {"/problems/price-book-version-published"}
    assert all(a.headers["content-type"] == "application/problem+json" for a in attempts)
    assert (await client.get(url)).json() == before


def _refused(gateway: Gateway, statement: Callable[[Connection], Any]) -> None:
    with pytest.raises(IntegrityError, match="immutable"):
        gateway.database.run_write(statement)


async def test_the_database_itself_refuses_to_change_a_published_version(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    now = clock.now()
    book_id, _ = await published_book(
        client, entry(MUG, promotion("P", "9.90", now + DAY, now + 2 * DAY))
    )
    of_v1 = {"book_id": book_id, "version": 1}

    def where(table: Any) -> Any:
        return (table.c.book_id == book_id) & (table.c.version == 1)

    _refused(
        gateway,
        lambda c: c.execute(update(price_entries).where(where(price_entries)).values(base_price=1)),
    )
    _refused(gateway, lambda c: c.execute(delete(price_promotions).where(where(price_promotions))))
    _refused(
        gateway,
        lambda c: c.execute(
            update(price_promotions).where(where(price_promotions)).values(starts_at=now)
        ),
    )
    _refused(
        gateway,
        lambda c: c.execute(
            insert(price_entries).values(**of_v1, sku=TEE, base_price=1, base_price_read_at=now)
        ),
    )
    _refused(
        gateway,
        lambda c: c.execute(
            update(price_book_versions)
            .where(where(price_book_versions))
            .values(status="draft", draft_key=book_id, published_at=None)
        ),
    )
    _refused(
        gateway, lambda c: c.execute(delete(price_book_versions).where(where(price_book_versions)))
    )
    assert (await client.get(version_url(book_id))).json()["entries"][0]["promotions"][0][
        "promotion_id"
    ] == "P"


async def test_a_change_is_a_new_version_copied_from_the_published_one(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    now = clock.now()
    book_id, first = await published_book(
        client, entry(MUG, promotion("P", "9.90", now + DAY, now + 2 * DAY))
    )

    draft = await client.post(f"/process/v1/price-books/{book_id}/versions")
    again = await client.post(f"/process/v1/price-books/{book_id}/versions")

    assert draft.status_code == 201, draft.text
    assert (draft.json()["version"], draft.json()["status"], draft.json()["based_on"]) == (
        2,
        "draft",
        1,
    )
    assert draft.json()["entries"] == first["entries"]
    assert again.status_code == 409
    assert again.json()["type"] == "/problems/price-book-draft-open"

    changed = await client.put(
        f"{version_url(book_id, 2)}/entries/{MUG}",
        json={"promotions": [promotion("P", "8.90", now + DAY, now + 2 * DAY)]},
    )
    assert changed.status_code == 200, changed.text
    published = await client.post(f"{version_url(book_id, 2)}/publish")
    assert published.status_code == 200, published.text

    versions = (await client.get(f"/process/v1/price-books/{book_id}/versions")).json()
    assert [(v["version"], v["status"]) for v in versions] == [(1, "published"), (2, "published")]
    v1 = (await client.get(version_url(book_id, 1))).json()
    assert v1["entries"][0]["promotions"][0]["price"] == {"amount": "9.90", "currency": "EUR"}


async def test_a_draft_can_be_edited_and_discarded(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client)
    url = version_url(book_id)

    assert (await put_entries(client, book_id, 1, entry(MUG), entry(TEE))).status_code == 200
    assert (await client.delete(f"{url}/entries/{TEE}")).status_code == 204
    assert (await client.delete(f"{url}/entries/{TEE}")).status_code == 404
    assert [e["sku"] for e in (await client.get(url)).json()["entries"]] == [MUG]
    assert (await client.delete(url)).status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.post(f"/process/v1/price-books/{book_id}/versions")).status_code == 201


async def test_one_book_per_channel_and_currency_and_only_for_channels_with_a_profile(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    book_id = await create_book(client)

    twice = await client.post("/process/v1/price-books", json={"channel": "webshop"})
    dollars = await client.post(
        "/process/v1/price-books", json={"channel": "webshop", "currency": "USD"}
    )
    unknown = await client.post("/process/v1/price-books", json={"channel": "nowhere"})

    assert twice.status_code == 409
    assert twice.json()["book_id"] == book_id
    assert dollars.status_code == 201
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [{"pointer": "#/channel", "detail": "no channel profile"}]
    listed = (await client.get("/process/v1/price-books", params={"channel": "webshop"})).json()
    assert [(b["channel"], b["currency"]) for b in listed] == [
        ("webshop", "EUR"),
        ("webshop", "USD"),
    ]
