"""The audit log records what an edit or a publication changed in a price book, by SKU (added,
removed, changed with the prices before and after), not the whole book: an entry grows with the
change, not with the book."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import product, seed_products
from tests.process.pricing.support import (
    TEE,
    create_book,
    entry,
    promotion,
    put_entries,
    seed_channels_and_products,
    version_url,
)

SKUS = [f"BOOK-{n:02}" for n in range(30)]
DAY = timedelta(days=1)


def eur(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "EUR"}


async def audit_of(client: httpx.AsyncClient, book_id: str, action: str) -> dict[str, Any]:
    page = await client.get(
        "/process/v1/audit",
        params={"subject": f"price_book/{book_id}", "action": f"price_book.{action}"},
    )
    assert page.status_code == 200, page.text
    latest: dict[str, Any] = page.json()["items"][0]
    return latest


async def test_replacing_and_publishing_entries_records_only_the_skus_that_changed(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    await seed_channels_and_products(gateway)
    seed_products(gateway, *(product(sku, "10.00") for sku in SKUS))
    book_id = await create_book(client)
    stored = await put_entries(client, book_id, 1, *(entry(sku) for sku in SKUS))
    assert stored.status_code == 200, stored.text
    first = await client.post(f"{version_url(book_id, 1)}/publish")
    assert first.status_code == 200, first.text
    draft = await client.post(f"/process/v1/price-books/{book_id}/versions")
    assert draft.status_code == 201, draft.text
    now = clock.now()
    sale = promotion("SALE", "8.00", now + DAY, now + 2 * DAY)
    utc = {"starts_at": now + DAY, "ends_at": now + 2 * DAY}
    recorded_sale = {**sale, **{k: at.isoformat().replace("+00:00", "Z") for k, at in utc.items()}}

    replaced = await put_entries(
        client,
        book_id,
        2,
        *(entry(sku) for sku in SKUS[3:]),  # BOOK-00 is taken out
        entry(SKUS[1], floor_price=eur("9.00")),
        entry(SKUS[2], sale),
        entry(TEE),
    )
    assert replaced.status_code == 200, replaced.text
    seed_products(gateway, product(SKUS[3], "11.00"))  # the ERP's list price moves
    second = await client.post(f"{version_url(book_id, 2)}/publish")
    assert second.status_code == 200, second.text

    opened = await audit_of(client, book_id, "draft_opened")
    edit = await audit_of(client, book_id, "entries_replaced")
    published = await audit_of(client, book_id, "published")

    assert opened["after"]["based_on"] == 1 and opened["after"]["entry_count"] == 30
    assert "entries" not in opened["after"]
    assert edit["before"]["version"] == 2 and edit["before"]["entry_count"] == 30
    assert edit["after"]["entry_count"] == 30
    assert "entries" not in edit["before"] and "entries" not in edit["after"]
    assert edit["after"]["entry_changes"] == {
        "added": [
            {
                "sku": TEE,
                "base_price": eur("19.90"),
                "floor_price": None,
                "unit_cost": None,
                "promotions": [],
            }
        ],
        "removed": [
            {
                "sku": SKUS[0],
                "base_price": eur("10.00"),
                "floor_price": None,
                "unit_cost": None,
                "promotions": [],
            }
        ],
        "changed": [
            {
                "sku": SKUS[1],
                "before": {"floor_price": None},
                "after": {"floor_price": eur("9.00")},
            },
            {
                "sku": SKUS[2],
                "before": {"promotions": []},
                "after": {"promotions": [recorded_sale]},
            },
        ],
    }
    assert published["before"] == {"published_version": 1, "entry_count": 30}
    assert published["after"]["version"] == 2
    assert published["after"]["status"] == "published"
    assert published["after"]["entry_count"] == 30
    changes = published["after"]["entry_changes"]
    assert [a["sku"] for a in changes["added"]] == [TEE]
    assert [r["sku"] for r in changes["removed"]] == [SKUS[0]]
    assert changes["changed"][0] == {
        "sku": SKUS[1],
        "before": {"floor_price": None},
        "after": {"floor_price": eur("9.00")},
    }
    assert changes["changed"][2] == {
        "sku": SKUS[3],
        "before": {"base_price": eur("10.00")},
        "after": {"base_price": eur("11.00")},
    }
    assert len(changes["changed"]) == 3
    for recorded in (opened, edit, published):  # the SKUs that did not change are not in the log
        assert SKUS[4] not in json.dumps(recorded)
