"""The exception queue as internal apps read it: what needs a person, newest first."""

from __future__ import annotations

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import order_payload, seed_products


async def test_a_stock_shortfall_appears_in_the_queue_with_its_history(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    seed_products(gateway, on_hand=5)
    ordered = await client.post("/process/v1/orders", json=order_payload("EXC-1"))
    assert ordered.status_code == 201
    counted = await client.post(
        "/process/v1/inventory/counts",
        json={"as_of": clock.now().isoformat(), "counts": [{"sku": "MUG-RED-350", "on_hand": 0}]},
    )
    assert counted.status_code == 200, counted.text

    listed = await client.get("/process/v1/exceptions", params={"status": "open"})

    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["workflow"] == "inventory_sync"
    assert item["code"] == "stock_shortfall"
    assert item["severity"] == "high"
    assert item["object_ids"] == {"sku": "MUG-RED-350"}
    one = await client.get(f"/process/v1/exceptions/{item['exception_id']}")
    assert one.json() == item
    assert [entry["action"] for entry in item["history"]] == ["raised"]
    filtered = await client.get("/process/v1/exceptions", params={"workflow": "settlement"})
    assert filtered.json()["items"] == []


async def test_an_unknown_exception_is_a_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/process/v1/exceptions/exc_nothing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unknown_status_filter_is_a_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/process/v1/exceptions", params={"status": "lost"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
