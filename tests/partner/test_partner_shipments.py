"""Partner shipment reading in both API versions: an order's packages as the warehouse confirmed
them, for the order's own channel only, behind the partner edge."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI

from contracts import Package, Shipment, ShipmentLine
from contracts.wms import AdjustmentReason, StockAdjustmentRequest
from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import product, seed_products
from tests.partner.conftest import Caller, _partner
from tests.process.fulfilment.support import FlakyWms, Outage

RED, BLUE = "MUG-RED-350", "MUG-BLUE-350"
WAREHOUSE = "WH"
FIRST_SHIPPED_AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
SECOND_SHIPPED_AT = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
async def stocked(gateway: Gateway) -> None:
    """Two mugs in the item master, counted by the gateway and held by the warehouse."""
    seed_products(gateway, product(RED, "12.90"), product(BLUE, "9.50"), on_hand=100)
    await gateway.embedded_wms.ensure_warehouse(WAREHOUSE, "Main warehouse")
    for sku in (RED, BLUE):
        await gateway.embedded_wms.adjust_stock(
            StockAdjustmentRequest(
                sku=sku,
                warehouse=WAREHOUSE,
                reason=AdjustmentReason.RECEIPT,
                reference=f"opening-{sku}",
                delta=100,
            )
        )


@pytest.fixture
async def inventory_only(gateway: Gateway, app: FastAPI) -> AsyncIterator[Caller]:
    """A webshop client that may read availability but not orders."""
    async for caller in _partner(gateway, app, "webshop", frozenset({"inventory:read"})):
        yield caller


async def released_order(gateway: Gateway, caller: Caller, channel_order_id: str) -> str:
    """An order the partner submitted (3 red mugs on line 1, 1 blue on line 2), accepted and
    released to the warehouse."""
    response = await caller.http.post(
        "/partner/v2/orders",
        json={
            "channel_order_id": channel_order_id,
            "currency": "EUR",
            "lines": [
                {
                    "line_id": "1",
                    "sku": RED,
                    "quantity": 3,
                    "unit_price": {"amount_minor": 1290, "currency": "EUR"},
                },
                {
                    "line_id": "2",
                    "sku": BLUE,
                    "quantity": 1,
                    "unit_price": {"amount_minor": 950, "currency": "EUR"},
                },
            ],
        },
        headers={"Idempotency-Key": f'"{uuid.uuid4()}"'},
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    release = await gateway.fulfilment.release(order_id, actor="test")
    assert release.fulfilment_id is not None
    return order_id


def package(reference: str, *items: tuple[str, str, int]) -> Package:
    return Package(
        package_reference=reference,
        carrier="dhl",
        tracking_number=f"00340434{reference[-1]}",
        lines=[ShipmentLine(line_id=line_id, sku=sku, quantity=n) for line_id, sku, n in items],
    )


async def ship(
    gateway: Gateway, order_id: str, shipment_id: str, at: datetime, *packages: Package
) -> None:
    """The warehouse ships packages of the order (confirmed by the WMS and recorded)."""
    recorded = await gateway.fulfilment.record_shipment(
        order_id,
        Shipment(
            shipment_id=shipment_id,
            order_id=order_id,
            warehouse=WAREHOUSE,
            packages=list(packages),
            shipped_at=at,
        ),
        actor="test",
    )
    assert recorded.created and not recorded.pending


async def ship_partially(gateway: Gateway, order_id: str) -> None:
    """Two of the three red mugs leave in one package."""
    await ship(gateway, order_id, "SHP-1", FIRST_SHIPPED_AT, package("PKG-1", ("1", RED, 2)))


async def ship_the_rest(gateway: Gateway, order_id: str) -> None:
    """The last red mug and the blue one leave in two packages of one shipment."""
    await ship(
        gateway,
        order_id,
        "SHP-2",
        SECOND_SHIPPED_AT,
        package("PKG-2", ("1", RED, 1)),
        package("PKG-3", ("2", BLUE, 1)),
    )


async def shipments(caller: Caller, version: str, order_id: str) -> Any:
    response = await caller.http.get(f"/partner/{version}/shipments", params={"order_id": order_id})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_partial_shipment_shows_its_one_package_and_a_full_one_every_package(
    gateway: Gateway, webshop: Caller
) -> None:
    order_id = await released_order(gateway, webshop, "W-SHP-1")

    await ship_partially(gateway, order_id)
    partial = await shipments(webshop, "v2", order_id)
    await ship_the_rest(gateway, order_id)
    full = await shipments(webshop, "v2", order_id)

    first = {
        "shipment_id": "SHP-1",
        "order_id": order_id,
        "channel_order_id": "W-SHP-1",
        "warehouse": WAREHOUSE,
        "shipped_at": "2026-11-27T10:00:00Z",
        "lines": [{"line_id": "1", "sku": RED, "shipped_quantity": 2}],
        "packages": [
            {
                "package_reference": "PKG-1",
                "carrier": "dhl",
                "tracking_number": "003404341",
                "lines": [{"line_id": "1", "sku": RED, "shipped_quantity": 2}],
            }
        ],
    }
    assert partial == {"items": [first]}
    assert full == {
        "items": [
            first,
            {
                "shipment_id": "SHP-2",
                "order_id": order_id,
                "channel_order_id": "W-SHP-1",
                "warehouse": WAREHOUSE,
                "shipped_at": "2026-11-28T09:30:00Z",
                "lines": [
                    {"line_id": "1", "sku": RED, "shipped_quantity": 1},
                    {"line_id": "2", "sku": BLUE, "shipped_quantity": 1},
                ],
                "packages": [
                    {
                        "package_reference": "PKG-2",
                        "carrier": "dhl",
                        "tracking_number": "003404342",
                        "lines": [{"line_id": "1", "sku": RED, "shipped_quantity": 1}],
                    },
                    {
                        "package_reference": "PKG-3",
                        "carrier": "dhl",
                        "tracking_number": "003404343",
                        "lines": [{"line_id": "2", "sku": BLUE, "shipped_quantity": 1}],
                    },
                ],
            },
        ]
    }


async def test_a_shipment_line_sums_the_units_of_its_packages(
    gateway: Gateway, webshop: Caller
) -> None:
    order_id = await released_order(gateway, webshop, "W-SHP-2")

    await ship(
        gateway,
        order_id,
        "SHP-1",
        FIRST_SHIPPED_AT,
        package("PKG-1", ("1", RED, 2), ("2", BLUE, 1)),
        package("PKG-2", ("1", RED, 1)),
    )
    body = await shipments(webshop, "v2", order_id)

    (only,) = body["items"]
    assert only["lines"] == [
        {"line_id": "1", "sku": RED, "shipped_quantity": 3},
        {"line_id": "2", "sku": BLUE, "shipped_quantity": 1},
    ]
    assert [len(p["lines"]) for p in only["packages"]] == [2, 1]


async def test_v1_lists_every_package_flat_with_its_tracking_and_deprecation_headers(
    gateway: Gateway, webshop: Caller
) -> None:
    order_id = await released_order(gateway, webshop, "W-SHP-3")
    await ship_partially(gateway, order_id)
    await ship_the_rest(gateway, order_id)

    v1 = await webshop.http.get("/partner/v1/shipments", params={"order_id": order_id})
    v2 = await webshop.http.get("/partner/v2/shipments", params={"order_id": order_id})

    assert v1.status_code == 200, v1.text
    assert v1.json() == {
        "items": [
            {
                "order_id": order_id,
                "shipment_id": shipment_id,
                "package_reference": reference,
                "carrier": "dhl",
                "tracking_number": tracking,
                "warehouse": WAREHOUSE,
                "shipped_at": shipped_at,
                "lines": [{"line_id": line_id, "sku": sku, "quantity": quantity}],
            }
            for shipment_id, reference, tracking, shipped_at, line_id, sku, quantity in (
                ("SHP-1", "PKG-1", "003404341", "2026-11-27T10:00:00Z", "1", RED, 2),
                ("SHP-2", "PKG-2", "003404342", "2026-11-28T09:30:00Z", "1", RED, 1),
                ("SHP-2", "PKG-3", "003404343", "2026-11-28T09:30:00Z", "2", BLUE, 1),
            )
        ]
    }
    assert "deprecation" in v1.headers
    assert "sunset" in v1.headers
    assert 'rel="deprecation"' in v1.headers["link"]
    assert "deprecation" not in v2.headers
    assert "sunset" not in v2.headers


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_an_order_that_has_not_shipped_answers_an_empty_list(
    gateway: Gateway, webshop: Caller, version: str
) -> None:
    order_id = await released_order(gateway, webshop, f"W-SHP-NONE-{version}")

    assert await shipments(webshop, version, order_id) == {"items": []}


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_packages_the_warehouse_has_not_confirmed_are_not_listed_yet(
    gateway: Gateway, clock: ManualClock, webshop: Caller, version: str
) -> None:
    order_id = await released_order(gateway, webshop, f"W-SHP-PENDING-{version}")
    outage = Outage("wms")
    gateway.fulfilment.wms = FlakyWms(gateway.fulfilment.wms, outage)
    outage.down = True

    recorded = await gateway.fulfilment.record_shipment(
        order_id,
        Shipment(
            shipment_id="SHP-1",
            order_id=order_id,
            warehouse=WAREHOUSE,
            packages=[package("PKG-1", ("1", RED, 3))],
            shipped_at=FIRST_SHIPPED_AT,
        ),
        actor="test",
    )
    waiting = await shipments(webshop, version, order_id)
    outage.down = False
    clock.advance(timedelta(minutes=1))
    ran = await gateway.scheduler.run_due()
    confirmed = await shipments(webshop, version, order_id)

    assert recorded.pending
    assert waiting == {"items": []}
    assert ran >= 1
    assert len(confirmed["items"]) == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_another_channels_order_answers_404_exactly_like_an_unknown_one(
    gateway: Gateway, webshop: Caller, marketplace: Caller, version: str
) -> None:
    order_id = await released_order(gateway, webshop, f"W-SHP-OWN-{version}")
    await ship_partially(gateway, order_id)
    unknown_id = "ORD-NO-SUCH-ORDER"

    foreign = await marketplace.http.get(
        f"/partner/{version}/shipments", params={"order_id": order_id}
    )
    unknown = await marketplace.http.get(
        f"/partner/{version}/shipments", params={"order_id": unknown_id}
    )

    assert foreign.status_code == unknown.status_code == 404
    assert foreign.headers["content-type"] == unknown.headers["content-type"]
    assert unknown.headers["content-type"] == "application/problem+json"
    hidden = {k: v for k, v in foreign.json().items() if k not in ("detail", "correlation_id")}
    missing = {k: v for k, v in unknown.json().items() if k not in ("detail", "correlation_id")}
    assert hidden == missing
    assert foreign.json()["detail"] == f"no order {order_id!r}"
    assert unknown.json()["detail"] == f"no order {unknown_id!r}"
    assert "PKG-1" not in foreign.text


@pytest.mark.parametrize(
    "query",
    ["", "?order_id=", "?order_id=ORD%00X", "?order_id=" + "X" * 129],
    ids=["missing", "empty", "control-character", "too-long"],
)
@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_missing_or_invalid_order_id_is_a_422_problem(
    gateway: Gateway, webshop: Caller, version: str, query: str
) -> None:
    response = await webshop.http.get(f"/partner/{version}/shipments{query}")

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["in"] == "query"


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_a_partner_without_the_orders_read_scope_is_refused(
    gateway: Gateway, webshop: Caller, inventory_only: Caller, version: str
) -> None:
    order_id = await released_order(gateway, webshop, f"W-SHP-SCOPE-{version}")

    response = await inventory_only.http.get(
        f"/partner/{version}/shipments", params={"order_id": order_id}
    )

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert response.json()["required_scopes"] == ["orders:read"]


async def test_an_anonymous_caller_is_refused(gateway: Gateway, webshop: Caller) -> None:
    response = await webshop.http.get(
        "/partner/v2/shipments", params={"order_id": "ORD-1"}, headers={"Authorization": ""}
    )

    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_the_operation_documents_every_answer(
    gateway: Gateway, webshop: Caller, version: str
) -> None:
    document = (await webshop.http.get(f"/partner/{version}/openapi.json")).json()

    operation = document["paths"]["/shipments"]["get"]
    assert {"200", "401", "403", "404", "422", "429"} <= set(operation["responses"])
    (parameter,) = [p for p in operation["parameters"] if p["name"] == "order_id"]
    assert parameter["in"] == "query"
    assert parameter["required"] is True


async def test_v2_order_lines_count_the_units_shipped_so_far(
    gateway: Gateway, webshop: Caller
) -> None:
    order_id = await released_order(gateway, webshop, "W-SHP-LINES")

    await ship_partially(gateway, order_id)
    partial = (await webshop.http.get(f"/partner/v2/orders/{order_id}")).json()
    await ship_the_rest(gateway, order_id)
    full = (await webshop.http.get(f"/partner/v2/orders/{order_id}")).json()

    red, blue = partial["lines"]
    assert partial["status"] == "partially_shipped"
    assert (red["status"], red["quantities"]["shipped"], red["quantities"]["acknowledged"]) == (
        "acknowledged",
        2,
        1,
    )
    assert (blue["status"], blue["quantities"]["shipped"]) == ("acknowledged", 0)
    assert [(line["status"], line["quantities"]["shipped"]) for line in full["lines"]] == [
        ("shipped", 3),
        ("shipped", 1),
    ]
