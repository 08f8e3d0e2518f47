"""Partner prices in both API versions: the calling channel's own price book only, the
promotion's price inside [start, end), v1 in decimal strings and v2 in minor units."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from contracts.channel import ChannelProfile, PriceRules
from contracts.money import Money
from gateway import Gateway
from gateway_infra.clock import ManualClock
from process_api.pricing.models import EntryBody, PromotionIn
from tests.factories import product, seed_products
from tests.partner.conftest import Caller

MUG = "MUG-RED-350"
TEE = "TEE-ORG-M"
MICROSECOND = timedelta(microseconds=1)
LEAD = timedelta(minutes=5)


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


async def price_books(gateway: Gateway, start: datetime, end: datetime) -> None:
    """webshop sells the mug at the ERP's 12.90 EUR with a 9.90 EUR promotion in [start, end)
    and the tee at 19.90 EUR; marketplace sells only the mug, with a promotion of its own."""
    rules = PriceRules(publication_lead_time=LEAD)
    await gateway.channels.seed(
        [
            ChannelProfile(channel="webshop", name="Webshop", currency="EUR", price_rules=rules),
            ChannelProfile(
                channel="marketplace", name="Marketplace", currency="EUR", price_rules=rules
            ),
        ],
        actor="test",
    )
    seed_products(gateway, product(MUG, "12.90"), product(TEE, "19.90"))
    pricing = gateway.pricing
    for channel, offers in (
        ("webshop", {MUG: ("SPRING", "9.90"), TEE: None}),
        ("marketplace", {MUG: ("MKT-DEAL", "8.50")}),
    ):
        book = await pricing.create_book(channel, None, actor="test")
        for sku, offer in offers.items():
            promotions = (
                []
                if offer is None
                else [
                    PromotionIn(
                        promotion_id=offer[0], price=eur(offer[1]), starts_at=start, ends_at=end
                    )
                ]
            )
            await pricing.put_entry(
                book.book_id, 1, sku, EntryBody(promotions=promotions), actor="test"
            )
        await pricing.publish(book.book_id, 1, actor="test")


async def prices(caller: Caller, version: str, *skus: str, at: str | None = None) -> Any:
    params: dict[str, Any] = {"sku": list(skus)}
    if at is not None:
        params["at"] = at
    response = await caller.http.get(f"/partner/{version}/prices", params=params)
    assert response.status_code == 200, response.text
    return response


async def test_each_version_answers_the_channels_price_in_its_own_shape(
    gateway: Gateway, clock: ManualClock, webshop: Caller
) -> None:
    start = clock.now() + timedelta(hours=1)
    await price_books(gateway, start, start + timedelta(days=2))
    at = start.isoformat()

    v1 = await prices(webshop, "v1", MUG, at=at)
    v2 = await prices(webshop, "v2", MUG, at=at)

    window = {"starts_at": "2026-01-01T13:00:00Z", "ends_at": "2026-01-03T13:00:00Z"}
    assert v1.json() == {
        "items": [
            {
                "sku": MUG,
                "at": "2026-01-01T13:00:00Z",
                "price": {"amount": "9.90", "currency": "EUR"},
                "base_price": {"amount": "12.90", "currency": "EUR"},
                "promotion": {
                    "promotion_id": "SPRING",
                    "price": {"amount": "9.90", "currency": "EUR"},
                    **window,
                },
            }
        ]
    }
    assert v2.json() == {
        "items": [
            {
                "sku": MUG,
                "at": "2026-01-01T13:00:00Z",
                "price": {"amount_minor": 990, "currency": "EUR"},
                "base_price": {"amount_minor": 1290, "currency": "EUR"},
                "promotion": {
                    "promotion_id": "SPRING",
                    "price": {"amount_minor": 990, "currency": "EUR"},
                    **window,
                },
                "price_book_version": 1,
            }
        ]
    }
    assert "deprecation" in v1.headers
    assert "deprecation" not in v2.headers


async def test_the_promotion_holds_from_its_start_until_just_before_its_end_in_any_offset(
    gateway: Gateway, clock: ManualClock, webshop: Caller
) -> None:
    start = datetime(2026, 1, 2, tzinfo=UTC)
    end = datetime(2026, 1, 4, tzinfo=UTC)
    await price_books(gateway, start, end)
    tokyo = timezone(timedelta(hours=9))
    los_angeles = timezone(timedelta(hours=-8))

    async def minor(at: datetime) -> int:
        response = await prices(webshop, "v2", MUG, at=at.isoformat())
        amount: int = response.json()["items"][0]["price"]["amount_minor"]
        return amount

    assert [
        await minor((start - MICROSECOND).astimezone(tokyo)),
        await minor(start.astimezone(tokyo)),
        await minor((end - MICROSECOND).astimezone(los_angeles)),
        await minor(end.astimezone(los_angeles)),
    ] == [1290, 990, 990, 1290]
    v1 = await prices(webshop, "v1", MUG, at="2026-01-02T09:00:00+09:00")
    assert v1.json()["items"][0]["at"] == "2026-01-02T00:00:00Z"
    assert v1.json()["items"][0]["price"] == {"amount": "9.90", "currency": "EUR"}


async def test_without_an_instant_the_price_is_the_one_now(
    gateway: Gateway, clock: ManualClock, webshop: Caller
) -> None:
    start = clock.now() + LEAD
    await price_books(gateway, start, start + timedelta(days=1))

    before = await prices(webshop, "v2", MUG)
    clock.set(start)
    during = await prices(webshop, "v2", MUG)

    assert before.json()["items"][0]["price"]["amount_minor"] == 1290
    assert during.json()["items"][0]["price"]["amount_minor"] == 990
    assert during.json()["items"][0]["at"] == start.isoformat().replace("+00:00", "Z")


async def test_a_channel_sees_its_own_price_book_only(
    gateway: Gateway, clock: ManualClock, webshop: Caller, marketplace: Caller
) -> None:
    start = clock.now() + timedelta(hours=1)
    await price_books(gateway, start, start + timedelta(days=1))
    at = start.isoformat()

    ours = await prices(webshop, "v2", MUG, TEE, at=at)
    theirs = await prices(marketplace, "v2", MUG, TEE, at=at)

    assert [(i["sku"], i["price"]) for i in ours.json()["items"]] == [
        (MUG, {"amount_minor": 990, "currency": "EUR"}),
        (TEE, {"amount_minor": 1990, "currency": "EUR"}),
    ]
    assert [(i["sku"], i["price"]) for i in theirs.json()["items"]] == [
        (MUG, {"amount_minor": 850, "currency": "EUR"}),
        (TEE, None),
    ]
    assert theirs.json()["items"][0]["promotion"]["promotion_id"] == "MKT-DEAL"


async def test_several_skus_are_answered_once_each_in_the_order_asked(
    gateway: Gateway, clock: ManualClock, webshop: Caller
) -> None:
    start = clock.now() + timedelta(hours=1)
    await price_books(gateway, start, start + timedelta(days=1))

    response = await webshop.http.get(
        "/partner/v1/prices?sku=TEE-ORG-M&sku=NOT-PRICED&sku=MUG-RED-350&sku=TEE-ORG-M"
    )

    assert response.status_code == 200, response.text
    assert [(i["sku"], i["price"]) for i in response.json()["items"]] == [
        (TEE, {"amount": "19.90", "currency": "EUR"}),
        ("NOT-PRICED", None),
        (MUG, {"amount": "12.90", "currency": "EUR"}),
    ]


async def test_a_naive_instant_or_too_many_skus_are_refused(
    gateway: Gateway, webshop: Caller
) -> None:
    naive = await webshop.http.get(
        "/partner/v2/prices", params={"sku": MUG, "at": "2026-01-02T00:00:00"}
    )
    too_many = await webshop.http.get(
        "/partner/v2/prices", params={"sku": [f"SKU-{n}" for n in range(51)]}
    )

    for response in (naive, too_many):
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
    assert naive.json()["errors"][0]["parameter"] == "at"


async def test_reading_prices_needs_the_prices_scope(read_only: Caller) -> None:
    response = await read_only.http.get("/partner/v2/prices", params={"sku": MUG})

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
