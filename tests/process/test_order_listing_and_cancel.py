"""Reading orders page by page, and cancelling orders that have not shipped."""

from __future__ import annotations

from datetime import timedelta

import httpx

from gateway import Gateway
from gateway_infra.clock import ManualClock
from tests.factories import order_payload, seed_products


async def _submit(
    client: httpx.AsyncClient, channel_order_id: str, channel: str = "webshop"
) -> str:
    response = await client.post(
        "/process/v1/orders", json=order_payload(channel_order_id, channel=channel)
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["order_id"]
    return order_id


async def test_orders_are_listed_page_by_page_by_last_change(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    seed_products(gateway)
    ids = []
    for n in range(5):
        ids.append(await _submit(client, f"L-{n}"))
        clock.advance(timedelta(seconds=1))

    first = (await client.get("/process/v1/orders", params={"limit": 2})).json()
    second = (
        await client.get("/process/v1/orders", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    third = (
        await client.get("/process/v1/orders", params={"limit": 2, "cursor": second["next_cursor"]})
    ).json()

    seen = [o["order_id"] for page in (first, second, third) for o in page["items"]]
    assert seen == ids
    assert third["next_cursor"] is None


async def test_orders_are_filtered_by_channel_status_and_change_time(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    seed_products(gateway)
    early = await _submit(client, "F-1")
    clock.advance(timedelta(minutes=5))
    cutoff = clock.now().isoformat()
    clock.advance(timedelta(minutes=5))
    late = await _submit(client, "F-2", channel="marketplace")
    await client.post(f"/process/v1/orders/{early}/cancel")

    by_channel = (await client.get("/process/v1/orders", params={"channel": "marketplace"})).json()
    cancelled = (await client.get("/process/v1/orders", params={"status": "cancelled"})).json()
    changed = (await client.get("/process/v1/orders", params={"updated_after": cutoff})).json()

    assert [o["order_id"] for o in by_channel["items"]] == [late]
    assert [o["order_id"] for o in cancelled["items"]] == [early]
    assert {o["order_id"] for o in changed["items"]} == {late, early}


async def test_a_cursor_the_api_never_issued_is_a_validation_problem(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/process/v1/orders", params={"cursor": "not-a-cursor"})

    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "cursor"


async def test_an_accepted_order_is_cancelled_in_the_gateway_and_in_the_erp(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    order_id = await _submit(client, "C-1")

    cancelled = await client.post(f"/process/v1/orders/{order_id}/cancel", json={"reason": "buyer"})
    again = await client.post(f"/process/v1/orders/{order_id}/cancel")

    assert cancelled.status_code == again.status_code == 200
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert body["history"][-1]["reason"] == "buyer"
    erp_order = await gateway.embedded_erp.get_sales_order("SO-000001")
    assert erp_order is not None and erp_order.state == "cancelled"


async def test_a_rejected_order_cannot_be_cancelled(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    rejected = await client.post("/process/v1/orders", json=order_payload("C-2"))  # no products
    order_id = rejected.json()["order_id"]

    response = await client.post(f"/process/v1/orders/{order_id}/cancel")

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "/problems/order-not-cancellable"
    assert (problem["status"], problem["order_status"]) == (409, "rejected")


async def test_cancelling_an_unknown_order_is_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.post("/process/v1/orders/ord_nope/cancel")).status_code == 404
