"""Channels, item master and price book helpers shared by the pricing tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

from contracts.channel import ChannelProfile, PriceRules
from gateway import Gateway
from gateway_infra.tables import outbox
from tests.factories import product, seed_products

MUG = "MUG-RED-350"
TEE = "TEE-ORG-M"
LEAD = timedelta(hours=4)
WEBSHOP_RULES = PriceRules(
    publication_lead_time=LEAD,
    max_promotions_per_sku=3,
    max_promotion_duration=timedelta(days=30),
    allow_overlapping_promotions=False,
)
MARKETPLACE_RULES = PriceRules(
    publication_lead_time=timedelta(hours=1),
    minimum_margin_percent=Decimal(20),
)


async def seed_channels_and_products(gateway: Gateway) -> None:
    """webshop (lead time 4 h, at most 3 promotions of at most 30 days, no overlaps) and
    marketplace (lead time 1 h, 20 % minimum margin), both in EUR; the ERP lists the mug at
    12.90 EUR and the tee at 19.90 EUR."""
    await gateway.channels.seed(
        [
            ChannelProfile(
                channel="webshop", name="Webshop", currency="EUR", price_rules=WEBSHOP_RULES
            ),
            ChannelProfile(
                channel="marketplace",
                name="Marketplace",
                currency="EUR",
                price_rules=MARKETPLACE_RULES,
            ),
        ],
        actor="test",
    )
    seed_products(gateway, product(MUG, "12.90"), product(TEE, "19.90"))


def iso(at: datetime) -> str:
    return at.isoformat()


def promotion(
    promotion_id: str, price: str, starts_at: datetime, ends_at: datetime
) -> dict[str, Any]:
    return {
        "promotion_id": promotion_id,
        "price": {"amount": price, "currency": "EUR"},
        "starts_at": iso(starts_at),
        "ends_at": iso(ends_at),
    }


def entry(sku: str, *promotions: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"sku": sku, "promotions": list(promotions), **fields}


async def create_book(client: httpx.AsyncClient, channel: str = "webshop") -> str:
    response = await client.post("/process/v1/price-books", json={"channel": channel})
    assert response.status_code == 201, response.text
    book_id: str = response.json()["book_id"]
    return book_id


def version_url(book_id: str, version: int = 1) -> str:
    return f"/process/v1/price-books/{book_id}/versions/{version}"


async def put_entries(
    client: httpx.AsyncClient, book_id: str, version: int, *entries: dict[str, Any]
) -> httpx.Response:
    return await client.put(f"{version_url(book_id, version)}/entries", json={"entries": entries})


async def publish(client: httpx.AsyncClient, book_id: str, version: int = 1) -> dict[str, Any]:
    response = await client.post(f"{version_url(book_id, version)}/publish")
    assert response.status_code == 200, response.text
    published: dict[str, Any] = response.json()
    return published


async def published_book(
    client: httpx.AsyncClient, *entries: dict[str, Any], channel: str = "webshop"
) -> tuple[str, dict[str, Any]]:
    """A book whose version 1 holds the entries and is published."""
    book_id = await create_book(client, channel)
    stored = await put_entries(client, book_id, 1, *entries)
    assert stored.status_code == 200, stored.text
    return book_id, await publish(client, book_id)


def pointers(problem: dict[str, Any]) -> list[tuple[str, str]]:
    return [(v["pointer"], v["code"]) for v in problem["violations"]]


def price_events(gateway: Gateway) -> list[dict[str, Any]]:
    """The data of every price.changed event in the outbox, in the order written."""
    rows = gateway.database.run_read(
        lambda conn: list(
            conn.execute(
                select(outbox.c.data, outbox.c.channel)
                .where(outbox.c.type == "price.changed")
                .order_by(outbox.c.id)
            )
        )
    )
    return [dict(row.data, channel_of_event=row.channel) for row in rows]
