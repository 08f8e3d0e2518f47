"""The returns API for internal apps: scopes, reading and listing, and problems for bad input."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import FastAPI

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from tests.conftest import BASE_URL, register_and_authorize
from tests.process.returns.support import (
    RED,
    create_return,
    receipt,
    red,
    return_payload,
    shipped_order,
)


async def test_reading_needs_the_read_scope_and_changing_the_write_scope(
    gateway: Gateway, app: FastAPI, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "API-1", red(1))
    ret = await create_return(client, order_id, "RMA-API-1", ("1", RED, 1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as reader:
        _, headers = await register_and_authorize(
            gateway, reader, kind=ClientKind.INTERNAL, scopes=frozenset({"process:returns:read"})
        )
        reader.headers.update(headers)
        read = await reader.get(f"/process/v1/returns/{ret['return_id']}")
        write = await reader.post(
            "/process/v1/returns", json=return_payload(order_id, "RMA-API-1b", ("1", RED, 1))
        )

    assert read.status_code == 200
    assert write.status_code == 403
    assert write.headers["content-type"] == "application/problem+json"


async def test_returns_are_listed_by_last_change_with_filters_and_cursors(
    gateway: Gateway, client: httpx.AsyncClient, clock: ManualClock
) -> None:
    order_id = await shipped_order(gateway, client, "API-2", red(3))
    ids: list[str] = []
    for n in range(3):
        clock.advance(timedelta(seconds=1))
        ids.append(
            (await create_return(client, order_id, f"RMA-API-2{n}", ("1", RED, 1)))["return_id"]
        )
    clock.advance(timedelta(seconds=1))
    await client.post(f"/process/v1/returns/{ids[0]}/receive", json=receipt(("1", 1)))

    first = (await client.get("/process/v1/returns", params={"limit": 2})).json()
    second = (
        await client.get("/process/v1/returns", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    received = (await client.get("/process/v1/returns", params={"status": "received"})).json()
    bad_cursor = await client.get("/process/v1/returns", params={"cursor": "nope"})

    assert [r["return_id"] for r in first["items"] + second["items"]] == [ids[1], ids[2], ids[0]]
    assert second["next_cursor"] is None
    assert [r["return_id"] for r in received["items"]] == [ids[0]]
    assert bad_cursor.status_code == 422


async def test_bad_input_is_a_problem_never_a_server_error(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    order_id = await shipped_order(gateway, client, "API-3", red(2))
    ret = await create_return(client, order_id, "RMA-API-3", ("1", RED, 1))
    return_id = ret["return_id"]

    answers = [
        await client.get("/process/v1/returns/ret_unknown"),
        await client.post("/process/v1/returns/ret_unknown/receive", json=receipt(("1", 1))),
        await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("1", 2))),
        await client.post(f"/process/v1/returns/{return_id}/receive", json=receipt(("7", 1))),
        await client.post(f"/process/v1/returns/{return_id}/receive", json={"lines": []}),
        await client.post(f"/process/v1/returns/{return_id}/inspect", json={"lines": []}),
        await client.post(f"/process/v1/returns/{return_id}/close"),
        await client.post(
            f"/process/v1/returns/{return_id}/channel-refund",
            json={
                "channel_refund_id": "X",
                "amount": {"amount": "5.00", "currency": "USD"},
                "refunded_at": "2026-01-01T00:00:00Z",
            },
        ),
        await client.post(
            "/process/v1/returns",
            json={**return_payload(order_id, "RMA-API-3b", ("1", RED, 1)), "lines": []},
        ),
    ]

    assert [a.status_code for a in answers] == [404, 404, 422, 422, 422, 409, 409, 422, 422]
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)
