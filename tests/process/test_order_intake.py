"""Order intake through the process API: validated by the ERP before it is accepted."""

from __future__ import annotations

from typing import Any

import httpx

from contracts import OrderStatus, OrderSubmission, ProductStatus
from gateway import Gateway
from gateway_infra.unit_of_work import UnitOfWork
from process_api.order_to_cash import repository as repo
from process_api.order_to_cash.port import Submitted
from tests.factories import line, order_payload, product, seed_products, seed_stock


async def test_valid_order_is_validated_by_the_erp_then_accepted(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"))

    response = await client.post("/process/v1/orders", json=order_payload("CH-1", line(quantity=2)))

    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "accepted"
    assert order["total"] == {"amount": "25.80", "currency": "EUR"}
    assert [h["to_status"] for h in order["history"]] == [
        "received",
        "reserved",
        "validated",
        "accepted",
    ]
    assert response.headers["location"].endswith(f"/process/v1/orders/{order['order_id']}")
    read_back = await client.get(f"/process/v1/orders/{order['order_id']}")
    assert read_back.status_code == 200
    assert read_back.json() == order


async def test_order_with_unknown_sku_and_wrong_price_is_rejected_with_a_reason_per_line(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(
        gateway,
        product("MUG-RED-350", "12.90"),
        product("OLD-1", status=ProductStatus.DISCONTINUED),
    )
    seed_stock(gateway, 1000, "NO-SUCH-SKU")  # the warehouse counts it; the ERP does not know it
    payload = order_payload(
        "CH-2",
        line("1", sku="NO-SUCH-SKU"),
        line("2", price="10.00"),
        line("3", sku="OLD-1"),
        line("4"),
    )

    response = await client.post("/process/v1/orders", json=payload)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/order-rejected"
    assert {(r["line_id"], r["reason"]) for r in problem["rejections"]} == {
        ("1", "unknown_sku"),
        ("2", "price_mismatch"),
        ("3", "inactive_sku"),
    }
    stored = (await client.get(f"/process/v1/orders/{problem['order_id']}")).json()
    assert stored["status"] == "rejected"
    assert len(stored["rejections"]) == 3


async def test_price_within_the_erp_tolerance_is_accepted(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"))

    response = await client.post(
        "/process/v1/orders", json=order_payload("CH-3", line(price="12.91"))
    )

    assert response.status_code == 201, response.text


async def test_same_channel_order_submitted_twice_creates_one_order(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    first = await client.post("/process/v1/orders", json=order_payload("CH-4"))
    second = await client.post("/process/v1/orders", json=order_payload("CH-4"))

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["order_id"] == first.json()["order_id"]


async def test_same_channel_order_id_on_another_channel_is_another_order(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    first = await client.post("/process/v1/orders", json=order_payload("CH-5"))
    second = await client.post(
        "/process/v1/orders", json=order_payload("CH-5", channel="amazon_de")
    )

    assert second.status_code == 201
    assert second.json()["order_id"] != first.json()["order_id"]


async def test_unknown_order_is_a_not_found_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/process/v1/orders/ord_missing")

    assert response.status_code == 404
    assert response.json()["type"] == "/problems/not-found"


async def test_an_order_beyond_the_stock_is_rejected_at_intake_and_holds_nothing(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"), on_hand=3)
    first = await client.post("/process/v1/orders", json=order_payload("S-1", line(quantity=2)))

    refused = await client.post("/process/v1/orders", json=order_payload("S-2", line(quantity=2)))

    assert first.status_code == 201
    assert refused.status_code == 409
    assert [(r["line_id"], r["reason"]) for r in refused.json()["rejections"]] == [
        ("1", "insufficient_stock")
    ]
    position = await gateway.inventory.position("MUG-RED-350")
    assert (position.on_hand, position.reserved) == (3, 2)


async def test_an_erp_rejection_and_a_cancellation_give_the_stock_back(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"), on_hand=5)
    accepted = await client.post("/process/v1/orders", json=order_payload("R-1", line(quantity=2)))
    rejected = await client.post(
        "/process/v1/orders", json=order_payload("R-2", line(quantity=2, price="1.00"))
    )
    held = await gateway.inventory.position("MUG-RED-350")

    await client.post(f"/process/v1/orders/{accepted.json()['order_id']}/cancel")

    assert rejected.status_code == 409  # price mismatch, after the stock was reserved
    assert held.reserved == 2  # only the accepted order still holds stock
    assert (await gateway.inventory.position("MUG-RED-350")).reserved == 0


def submission_of(payload: dict[str, Any]) -> OrderSubmission:
    return OrderSubmission.model_validate(payload)


class AnswerLog:
    """An answer writer that notes each call and the order's status as its transaction sees it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Submitted, str | None]] = []

    def __call__(self, uow: UnitOfWork, result: Submitted) -> None:
        stored = repo.load_order(uow.conn, result.order.order_id)
        self.calls.append((result, stored.status.value if stored else None))


async def test_the_submitters_answer_is_written_with_the_erps_decision(gateway: Gateway) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"))
    answers = AnswerLog()

    result = await gateway.orders.submit(
        submission_of(order_payload("AN-1", line())), actor="test", answer=answers
    )

    assert result.order.status is OrderStatus.ACCEPTED
    assert answers.calls == [(result, "accepted")]


async def test_the_answer_to_an_order_rejected_for_stock_is_written_with_its_intake(
    gateway: Gateway,
) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"), on_hand=1)
    answers = AnswerLog()

    result = await gateway.orders.submit(
        submission_of(order_payload("AN-2", line(quantity=2))), actor="test", answer=answers
    )

    assert result.order.status is OrderStatus.REJECTED
    assert answers.calls == [(result, "rejected")]


async def test_no_answer_is_written_when_nothing_settles_the_order(gateway: Gateway) -> None:
    seed_products(gateway, product("MUG-RED-350", "12.90"))
    first = await gateway.orders.submit(submission_of(order_payload("AN-3", line())), actor="t")
    answers = AnswerLog()

    again = await gateway.orders.submit(
        submission_of(order_payload("AN-3", line())), actor="test", answer=answers
    )

    assert (again.created, again.order.status) == (False, first.order.status)
    assert answers.calls == []  # decided before: the submitter stores its answer itself
