"""People act on exceptions through the process API: acknowledge, then resolve with an action."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from contracts import OrderStatus
from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from tests.conftest import register_and_authorize
from tests.factories import order_payload, seed_products
from tests.process.exceptions.support import events, raise_exception

PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


async def test_acknowledging_an_open_exception_records_who_took_it(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    exception_id = await raise_exception(gateway)

    taken = await client.post(
        f"/process/v1/exceptions/{exception_id}/acknowledge", json={"note": "counting again"}
    )
    again = await client.post(f"/process/v1/exceptions/{exception_id}/acknowledge")

    assert taken.status_code == 200, taken.text
    body = taken.json()
    assert body["status"] == "acknowledged"
    entry = body["history"][-1]
    assert (entry["action"], entry["status"], entry["note"]) == (
        "acknowledged",
        "acknowledged",
        "counting again",
    )
    assert entry["actor"].startswith("client:")
    assert again.status_code == 200
    assert again.json()["history"] == body["history"]  # acknowledging again changes nothing
    assert len(events(gateway, "exception.acknowledged")) == 1


@pytest.mark.parametrize(
    ("action", "status"), [("fixed_by_hand", "resolved"), ("ignore", "ignored")]
)
async def test_closing_by_hand_keeps_the_note_and_closes_the_exception(
    gateway: Gateway, client: httpx.AsyncClient, action: str, status: str
) -> None:
    exception_id = await raise_exception(gateway)

    closed = await client.post(
        f"/process/v1/exceptions/{exception_id}/resolve",
        json={"action": action, "note": "warehouse found the units on another shelf"},
    )

    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == status
    last = closed.json()["history"][-1]
    assert (last["action"], last["note"]) == (action, "warehouse found the units on another shelf")
    [event] = events(gateway, f"exception.{status}")
    assert event["data"]["resolution"] == action
    listed = await client.get("/process/v1/exceptions", params={"status": "open"})
    assert listed.json()["items"] == []


async def test_a_closed_exception_takes_no_more_actions(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    exception_id = await raise_exception(gateway)
    url = f"/process/v1/exceptions/{exception_id}"
    await client.post(f"{url}/resolve", json={"action": "ignore", "note": "known issue"})

    acknowledged = await client.post(f"{url}/acknowledge")
    resolved = await client.post(f"{url}/resolve", json={"action": "fixed_by_hand", "note": "x"})
    retried = await client.post(f"{url}/resolve", json={"action": "retry"})

    body = problem(acknowledged, 409, "exception-closed")
    assert body["exception_status"] == "ignored"
    problem(resolved, 409, "exception-closed")
    problem(retried, 409, "exception-closed")


async def test_an_unknown_exception_is_a_404_problem_for_every_action(
    client: httpx.AsyncClient,
) -> None:
    acknowledged = await client.post("/process/v1/exceptions/exc_nothing/acknowledge")
    resolved = await client.post(
        "/process/v1/exceptions/exc_nothing/resolve", json={"action": "fixed_by_hand", "note": "x"}
    )

    problem(acknowledged, 404, "not-found")
    problem(resolved, 404, "not-found")


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"action": "fixed_by_hand"}, "#/note"),
        ({"action": "ignore", "note": None}, "#/note"),
        ({"action": "rebuild"}, "#/action"),
        ({"note": "no action"}, "#/action"),
        ({"action": "retry", "note": ""}, "#/note"),
        ({"action": "retry", "colour": "red"}, "#/colour"),
    ],
)
async def test_an_invalid_resolution_is_a_422_problem_pointing_at_the_field(
    gateway: Gateway, client: httpx.AsyncClient, body: dict[str, Any], pointer: str
) -> None:
    exception_id = await raise_exception(gateway)

    response = await client.post(f"/process/v1/exceptions/{exception_id}/resolve", json=body)

    answer = problem(response, 422, "validation-error")
    assert pointer in [error["pointer"] for error in answer["errors"]]


async def test_retry_of_an_exception_no_step_raised_is_a_409_problem(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    exception_id = await raise_exception(gateway)

    response = await client.post(
        f"/process/v1/exceptions/{exception_id}/resolve", json={"action": "retry"}
    )

    body = problem(response, 409, "exception-action-not-applicable")
    assert "nothing to run again" in body["detail"]


async def test_replay_is_a_409_problem_for_an_exception_about_no_webhook_endpoint(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    exception_id = await raise_exception(gateway)

    response = await client.post(
        f"/process/v1/exceptions/{exception_id}/resolve", json={"action": "replay"}
    )

    body = problem(response, 409, "exception-action-not-applicable")
    assert "no dead letters to replay" in body["detail"]


async def test_cancel_cancels_the_order_the_exception_is_about(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    order_id = (await client.post("/process/v1/orders", json=order_payload("EXC-CANCEL"))).json()[
        "order_id"
    ]
    exception_id = await raise_exception(
        gateway,
        workflow="order_capture",
        code="acknowledgement_at_risk",
        subject=f"order/{order_id}",
        object_ids={"order_id": order_id},
    )

    cancelled = await client.post(
        f"/process/v1/exceptions/{exception_id}/resolve",
        json={"action": "cancel", "note": "buyer asked to cancel"},
    )

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "resolved"
    assert [e["action"] for e in cancelled.json()["history"]][-1] == "cancel"
    order = await gateway.orders.require(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert order.history[-1].reason == "buyer asked to cancel"


async def test_cancel_of_an_exception_not_about_an_order_is_a_409_problem(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    exception_id = await raise_exception(gateway)

    response = await client.post(
        f"/process/v1/exceptions/{exception_id}/resolve", json={"action": "cancel"}
    )

    problem(response, 409, "exception-action-not-applicable")


async def test_acting_needs_the_write_scope(gateway: Gateway, client: httpx.AsyncClient) -> None:
    exception_id = await raise_exception(gateway)
    _, reader = await register_and_authorize(
        gateway, client, kind=ClientKind.INTERNAL, scopes=frozenset({"process:exceptions:read"})
    )

    read = await client.get(f"/process/v1/exceptions/{exception_id}", headers=reader)
    refused = await client.post(
        f"/process/v1/exceptions/{exception_id}/acknowledge", headers=reader
    )

    assert read.status_code == 200
    problem(refused, 403, "forbidden")


async def test_the_queue_filters_by_owner_team_and_severity(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    await raise_exception(gateway)
    mine = await raise_exception(
        gateway,
        workflow="order_capture",
        code="acknowledgement_at_risk",
        subject="order/ord_1",
    )

    by_team = await client.get("/process/v1/exceptions", params={"owner_team": "order-desk"})
    by_severity = await client.get("/process/v1/exceptions", params={"severity": "medium"})

    assert [e["exception_id"] for e in by_team.json()["items"]] == [mine]
    assert [e["owner_team"] for e in by_severity.json()["items"]] == ["operations"]
