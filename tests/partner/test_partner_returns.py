"""Partner returns in both API versions: a return of one of the channel's orders is decided at
once by the channel's policy (201 authorized, 409 refused with every reason, 404 for an unknown or
another channel's order), replayed by its Idempotency-Key, and readable by its own channel only."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from contracts.wms import AdjustmentReason, StockAdjustmentRequest
from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import line, order_payload, product, seed_products
from tests.partner.conftest import Caller
from tests.process.fulfilment.support import WAREHOUSE, package

RED, BLUE = "MUG-RED-350", "MUG-BLUE-350"
VERSIONS = ("v1", "v2")


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


def key() -> dict[str, str]:
    return {"Idempotency-Key": f'"{uuid.uuid4()}"'}


async def shipped_order(
    client: httpx.AsyncClient, clock: ManualClock, channel_order_id: str, *, ship_blue: bool = True
) -> str:
    """A webshop order of 3 red mugs (line 1) and 1 blue mug (line 2), shipped and invoiced
    (the blue mug only when ship_blue)."""
    created = await client.post(
        "/process/v1/orders",
        json=order_payload(
            channel_order_id,
            line("1", RED, quantity=3, price="12.90"),
            line("2", BLUE, quantity=1, price="9.50"),
        ),
    )
    assert created.status_code == 201, created.text
    order_id: str = created.json()["order_id"]
    assert (await client.post(f"/process/v1/orders/{order_id}/release")).status_code == 200
    items = [("1", RED, 3)] + ([("2", BLUE, 1)] if ship_blue else [])
    shipped = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json={
            "order_id": order_id,
            "warehouse": WAREHOUSE,
            "packages": [package(f"PKG-{channel_order_id}", *items)],
            "shipped_at": clock.now().isoformat(),
        },
    )
    assert shipped.status_code == 201, shipped.text
    assert (await client.post(f"/process/v1/orders/{order_id}/invoice")).status_code == 200
    return order_id


def return_body(order_id: str, channel_return_id: str, *lines: tuple[str, str, int]) -> Any:
    return {
        "order_id": order_id,
        "channel_return_id": channel_return_id,
        "lines": [
            {"line_id": line_id, "sku": sku, "quantity": quantity, "reason": "too small"}
            for line_id, sku, quantity in lines
        ],
    }


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_return_of_a_shipped_order_is_authorized_and_read_back(
    client: httpx.AsyncClient, clock: ManualClock, webshop: Caller, version: str
) -> None:
    order_id = await shipped_order(client, clock, f"W-RET-1-{version}")

    response = await webshop.http.post(
        f"/partner/{version}/returns",
        json=return_body(order_id, "AMZ-RMA-1", ("1", RED, 2), ("2", BLUE, 1)),
        headers=key(),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    return_id = body["return_id"]
    assert body["status"] == "authorized"
    assert response.headers["location"].endswith(f"/partner/{version}/returns/{return_id}")
    read = await webshop.http.get(f"/partner/{version}/returns/{return_id}")
    assert read.status_code == 200
    assert read.json() == body
    other_version = "v2" if version == "v1" else "v1"
    assert (
        await webshop.http.get(f"/partner/{other_version}/returns/{return_id}")
    ).status_code == 200


async def test_v1_shows_money_as_decimal_strings_and_v2_in_minor_units_with_line_quantities(
    client: httpx.AsyncClient, clock: ManualClock, webshop: Caller
) -> None:
    order_id = await shipped_order(client, clock, "W-RET-2")
    created = await webshop.http.post(
        "/partner/v2/returns",
        json=return_body(order_id, "AMZ-RMA-2", ("1", RED, 2)),
        headers=key(),
    )
    return_id = created.json()["return_id"]
    await client.post(
        f"/process/v1/returns/{return_id}/receive",
        json={"lines": [{"line_id": "1", "quantity_received": 2}]},
    )
    await client.post(
        f"/process/v1/returns/{return_id}/inspect",
        json={
            "lines": [
                {"line_id": "1", "grade": "resellable", "disposition": "restock", "quantity": 1},
                {"line_id": "1", "grade": "damaged", "disposition": "scrap", "quantity": 1},
            ]
        },
    )
    await client.post(f"/process/v1/returns/{return_id}/approve-refund")

    v1 = (await webshop.http.get(f"/partner/v1/returns/{return_id}")).json()
    v2 = (await webshop.http.get(f"/partner/v2/returns/{return_id}")).json()

    assert v1["status"] == v2["status"] == "refunded"
    assert v1["lines"] == [{"line_id": "1", "sku": RED, "quantity": 2, "reason": "too small"}]
    [refund_v1] = v1["refunds"]
    assert refund_v1["amount"] == {"amount": "12.90", "currency": "EUR"}
    assert refund_v1["kind"] == "approved" and refund_v1["state"] == "posted"
    [line_v2] = v2["lines"]
    assert line_v2["unit_price"] == {"amount_minor": 1290, "currency": "EUR"}
    assert line_v2["refund_timing"] == "after_inspection"
    assert line_v2["quantities"] == {
        "requested": 2,
        "received": 2,
        "resellable": 1,
        "damaged": 1,
        "missing": 0,
        "refunded": 1,
    }
    assert v2["value"] == {"amount_minor": 2580, "currency": "EUR"}
    assert v2["refunded"] == {"amount_minor": 1290, "currency": "EUR"}
    assert v2["refunds"][0]["lines"] == [
        {"line_id": "1", "quantity": 1, "amount": {"amount_minor": 1290, "currency": "EUR"}}
    ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_refused_return_answers_409_with_every_reason(
    client: httpx.AsyncClient, clock: ManualClock, webshop: Caller, version: str
) -> None:
    order_id = await shipped_order(client, clock, f"W-RET-3-{version}", ship_blue=False)

    response = await webshop.http.post(
        f"/partner/{version}/returns",
        json=return_body(order_id, "AMZ-RMA-3", ("1", RED, 4), ("2", BLUE, 1)),
        headers=key(),
    )

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/return-refused"
    assert sorted((r["line_id"], r["code"]) for r in problem["reasons"]) == [
        ("1", "quantity_exceeds_returnable"),
        ("2", "not_shipped"),
    ]
    refused = await webshop.http.get(f"/partner/{version}/returns/{problem['return_id']}")
    assert refused.json()["status"] == "refused"
    assert len(refused.json()["refusals"]) == 2


@pytest.mark.parametrize("version", VERSIONS)
async def test_another_channels_order_or_return_is_not_found(
    client: httpx.AsyncClient,
    clock: ManualClock,
    webshop: Caller,
    marketplace: Caller,
    version: str,
) -> None:
    order_id = await shipped_order(client, clock, f"W-RET-4-{version}")
    own = await webshop.http.post(
        f"/partner/{version}/returns",
        json=return_body(order_id, "AMZ-RMA-4", ("1", RED, 1)),
        headers=key(),
    )

    foreign_order = await marketplace.http.post(
        f"/partner/{version}/returns",
        json=return_body(order_id, "MKT-RMA-4", ("1", RED, 1)),
        headers=key(),
    )
    unknown_order = await webshop.http.post(
        f"/partner/{version}/returns",
        json=return_body("ord_unknown", "AMZ-RMA-4b", ("1", RED, 1)),
        headers=key(),
    )
    foreign_return = await marketplace.http.get(
        f"/partner/{version}/returns/{own.json()['return_id']}"
    )
    unknown_return = await webshop.http.get(f"/partner/{version}/returns/ret_unknown")

    assert own.status_code == 201
    assert [
        r.status_code for r in (foreign_order, unknown_order, foreign_return, unknown_return)
    ] == [404, 404, 404, 404]
    assert foreign_return.json()["detail"] == unknown_return.json()["detail"].replace(
        "ret_unknown", own.json()["return_id"]
    )


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_retried_request_replays_the_first_answer_and_creates_one_return(
    gateway: Gateway,
    client: httpx.AsyncClient,
    clock: ManualClock,
    webshop: Caller,
    version: str,
) -> None:
    order_id = await shipped_order(client, clock, f"W-RET-5-{version}")
    headers = key()
    body = return_body(order_id, "AMZ-RMA-5", ("1", RED, 1))

    first = await webshop.http.post(f"/partner/{version}/returns", json=body, headers=headers)
    replay = await webshop.http.post(f"/partner/{version}/returns", json=body, headers=headers)
    other_payload = await webshop.http.post(
        f"/partner/{version}/returns",
        json=return_body(order_id, "AMZ-RMA-5", ("1", RED, 2)),
        headers=headers,
    )
    new_key = await webshop.http.post(f"/partner/{version}/returns", json=body, headers=key())
    no_key = await webshop.http.post(f"/partner/{version}/returns", json=body)

    assert first.status_code == replay.status_code == 201
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()
    assert other_payload.status_code == 422
    assert new_key.status_code == 200  # the same channel return, answered as it is
    assert new_key.json()["return_id"] == first.json()["return_id"]
    assert no_key.status_code == 400
    listed = await gateway.returns.list(order_id=order_id)
    assert len(listed.items) == 1


async def test_requesting_returns_needs_the_returns_scope(
    client: httpx.AsyncClient, clock: ManualClock, read_only: Caller
) -> None:
    order_id = await shipped_order(client, clock, "W-RET-6")

    response = await read_only.http.post(
        "/partner/v2/returns",
        json=return_body(order_id, "AMZ-RMA-6", ("1", RED, 1)),
        headers=key(),
    )

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
