"""Partner availability in both API versions: each channel sees its own policy applied to the
same stock, behind the partner edge."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from fastapi import FastAPI
from pydantic import TypeAdapter

from contracts import ChannelAvailability
from contracts.channel import AvailabilityMode, AvailabilityPolicy, ChannelProfile
from gateway import Gateway
from gateway_infra.clock import ManualClock
from partner_api.inventory import RenderedAnswers
from partner_api.v1.schemas import V1Inventory
from partner_api.v2.schemas import V2Inventory
from process_api.inventory.port import MAX_SKUS_PER_QUERY
from tests.factories import product, seed_products
from tests.partner.conftest import Caller, _partner

MUG = "MUG-RED-350"


async def two_channels(gateway: Gateway) -> None:
    """webshop sells the shared pool less 2 units of safety stock; marketplace half of what is
    left after a buffer of 2 more."""
    await gateway.channels.seed(
        [
            ChannelProfile(
                channel="webshop",
                name="Webshop",
                currency="EUR",
                availability=AvailabilityPolicy(safety_stock=2),
            ),
            ChannelProfile(
                channel="marketplace",
                name="Marketplace",
                currency="EUR",
                availability=AvailabilityPolicy(
                    mode=AvailabilityMode.PERCENTAGE,
                    percentage=Decimal(50),
                    safety_stock=2,
                    buffer=2,
                ),
            ),
        ],
        actor="test",
    )


async def counted(gateway: Gateway, clock: ManualClock, **on_hand: int) -> None:
    """The warehouse's counts, taken (and published) the way the WMS reports them."""
    await gateway.inventory.report_on_hand_many(
        {sku.replace("_", "-"): units for sku, units in on_hand.items()}, clock.now()
    )


@pytest.fixture
async def newcomer(gateway: Gateway, app: FastAPI) -> AsyncIterator[Caller]:
    """A client of a channel that has no channel profile yet."""
    async for caller in _partner(gateway, app, "newshop", frozenset({"inventory:read"})):
        yield caller


async def test_each_channel_sees_its_own_policy_applied_to_the_same_stock(
    gateway: Gateway, clock: ManualClock, webshop: Caller, marketplace: Caller
) -> None:
    await two_channels(gateway)
    await counted(gateway, clock, MUG_RED_350=100)

    ours = await webshop.http.get("/partner/v2/inventory", params={"sku": MUG})
    theirs = await marketplace.http.get("/partner/v2/inventory", params={"sku": MUG})

    assert ours.status_code == theirs.status_code == 200, ours.text
    now = clock.now().isoformat().replace("+00:00", "Z")
    assert ours.json() == {
        "items": [
            {
                "sku": MUG,
                "available_quantity": 98,
                "as_of": now,
                "published_quantity": 98,
                "published_at": now,
            }
        ]
    }
    assert theirs.json()["items"][0]["available_quantity"] == 48
    assert theirs.json()["items"][0]["published_quantity"] == 48


async def test_v1_answers_the_quantity_in_its_own_shape_with_deprecation_headers(
    gateway: Gateway, clock: ManualClock, webshop: Caller
) -> None:
    await two_channels(gateway)
    await counted(gateway, clock, MUG_RED_350=10)

    v1 = await webshop.http.get("/partner/v1/inventory", params={"sku": MUG})
    v2 = await webshop.http.get("/partner/v2/inventory", params={"sku": MUG})

    assert v1.status_code == 200, v1.text
    assert v1.json() == {
        "items": [
            {"sku": MUG, "quantity": 8, "as_of": clock.now().isoformat().replace("+00:00", "Z")}
        ]
    }
    assert v2.json()["items"][0]["available_quantity"] == 8
    assert "deprecation" in v1.headers
    assert "sunset" in v1.headers
    assert "deprecation" not in v2.headers
    assert "sunset" not in v2.headers


async def test_several_skus_are_answered_once_each_in_the_order_asked(
    gateway: Gateway, clock: ManualClock, webshop: Caller
) -> None:
    await two_channels(gateway)
    await counted(gateway, clock, MUG_RED_350=10, TEE_ORG_M=5)

    response = await webshop.http.get(
        "/partner/v2/inventory?sku=TEE-ORG-M&sku=NEVER-COUNTED&sku=MUG-RED-350&sku=TEE-ORG-M"
    )

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [(i["sku"], i["available_quantity"]) for i in items] == [
        ("TEE-ORG-M", 3),
        ("NEVER-COUNTED", 0),
        ("MUG-RED-350", 8),
    ]
    assert items[1]["published_quantity"] is None
    assert items[1]["published_at"] is None


async def test_an_order_that_reserves_stock_lowers_what_every_channel_may_sell(
    gateway: Gateway, webshop: Caller, marketplace: Caller
) -> None:
    await two_channels(gateway)
    seed_products(gateway, product(MUG), on_hand=20)
    before = {
        name: (await caller.http.get("/partner/v2/inventory", params={"sku": MUG})).json()
        for name, caller in (("webshop", webshop), ("marketplace", marketplace))
    }

    order = await webshop.http.post(
        "/partner/v2/orders",
        json={
            "channel_order_id": "W-INV-1",
            "currency": "EUR",
            "lines": [
                {
                    "line_id": "1",
                    "sku": MUG,
                    "quantity": 6,
                    "unit_price": {"amount_minor": 1290, "currency": "EUR"},
                }
            ],
        },
        headers={"Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    ours = (await webshop.http.get("/partner/v1/inventory", params={"sku": MUG})).json()
    theirs = (await marketplace.http.get("/partner/v2/inventory", params={"sku": MUG})).json()

    assert order.status_code == 201, order.text
    assert before["webshop"]["items"][0]["available_quantity"] == 18
    assert before["marketplace"]["items"][0]["available_quantity"] == 8
    assert ours["items"][0]["quantity"] == 12
    assert theirs["items"][0]["available_quantity"] == 5
    assert theirs["items"][0]["published_quantity"] == 5


async def test_a_channel_without_a_profile_is_offered_nothing(
    gateway: Gateway, clock: ManualClock, newcomer: Caller
) -> None:
    await two_channels(gateway)
    await counted(gateway, clock, MUG_RED_350=100)

    response = await newcomer.http.get("/partner/v2/inventory", params={"sku": MUG})

    assert response.status_code == 200, response.text
    item = response.json()["items"][0]
    assert item["available_quantity"] == 0
    assert item["published_quantity"] is None


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?sku=",
        "?sku=not%20a%20sku",
        "?sku=MUG%00RED",
        "?sku=" + "X" * 65,
        "?" + "&".join(f"sku=SKU-{n}" for n in range(MAX_SKUS_PER_QUERY + 1)),
    ],
    ids=["missing", "empty", "space", "control-character", "too-long", "too-many"],
)
@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_missing_or_invalid_sku_is_a_422_problem(
    gateway: Gateway, webshop: Caller, version: str, query: str
) -> None:
    response = await webshop.http.get(f"/partner/{version}/inventory{query}")

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["in"] == "query"


async def test_the_most_skus_one_query_may_name_are_answered(
    gateway: Gateway, webshop: Caller
) -> None:
    query = "&".join(f"sku=SKU-{n}" for n in range(MAX_SKUS_PER_QUERY))

    response = await webshop.http.get(f"/partner/v2/inventory?{query}")

    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == MAX_SKUS_PER_QUERY


async def test_a_partner_without_the_inventory_scope_is_refused(
    gateway: Gateway, read_only: Caller
) -> None:
    response = await read_only.http.get("/partner/v2/inventory", params={"sku": MUG})

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.json()["required_scopes"] == ["inventory:read"]


async def test_an_anonymous_caller_is_refused(gateway: Gateway, webshop: Caller) -> None:
    response = await webshop.http.get(
        "/partner/v2/inventory", params={"sku": MUG}, headers={"Authorization": ""}
    )

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_caller_is_checked_before_its_query(
    gateway: Gateway, webshop: Caller, read_only: Caller, version: str
) -> None:
    anonymous = await webshop.http.get(
        f"/partner/{version}/inventory", params={"sku": ""}, headers={"Authorization": ""}
    )
    without_scope = await read_only.http.get(f"/partner/{version}/inventory")
    admitted = await webshop.http.get(f"/partner/{version}/inventory")

    assert anonymous.status_code == 401
    assert without_scope.status_code == 403
    assert admitted.status_code == 422
    assert admitted.headers["ratelimit"]


async def test_availability_answers_carry_the_rate_limit_fields(
    gateway: Gateway, webshop: Caller
) -> None:
    response = await webshop.http.get("/partner/v2/inventory", params={"sku": MUG})

    assert response.status_code == 200
    assert response.headers["ratelimit-policy"].startswith('"burst";q=')
    assert response.headers["ratelimit"].startswith('"burst";r=')


@pytest.mark.parametrize("representation", [V1Inventory(), V2Inventory()])
def test_an_answer_kept_as_json_is_what_its_response_model_writes_and_new_entries_are_rendered_anew(
    representation: V1Inventory | V2Inventory,
) -> None:
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    answer = [
        ChannelAvailability(sku=MUG, channel="webshop", available=7, as_of=at),
        ChannelAvailability(
            sku="TEE-ORG-M",
            channel="webshop",
            available=0,
            as_of=at,
            published_quantity=3,
            published_at=at,
        ),
    ]
    later = [answer[0].model_copy(update={"available": 6}), answer[1]]
    rendered = RenderedAnswers(representation, max_entries=1)
    model = TypeAdapter(representation.response_model)

    first = rendered.body(answer)
    again = rendered.body(list(answer))  # the same entries, as the read cache hands them out
    changed = rendered.body(later)
    after_eviction = rendered.body(answer)

    assert first == model.dump_json(representation.from_availability(answer), by_alias=True)
    assert again is first
    assert changed == model.dump_json(representation.from_availability(later), by_alias=True)
    assert changed != first
    assert after_eviction == first and after_eviction is not first


def test_answers_are_rendered_without_being_kept_when_the_read_cache_is_off() -> None:
    representation = V2Inventory()
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    answer = [ChannelAvailability(sku=MUG, channel="webshop", available=7, as_of=at)]
    rendered = RenderedAnswers(representation, max_entries=0)
    model = TypeAdapter(representation.response_model)

    first = rendered.body(answer)
    again = rendered.body(answer)

    assert (
        first == again == model.dump_json(representation.from_availability(answer), by_alias=True)
    )
    assert again is not first  # rendered anew: nothing kept to reuse
