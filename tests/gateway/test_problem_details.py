"""Every error of every app is application/problem+json with a stable type and a correlation id."""

from __future__ import annotations

import httpx
import pytest

from gateway import Gateway
from tests.factories import order_payload, seed_products

PROBLEM = "application/problem+json"


async def test_unknown_path_is_a_not_found_problem(client: httpx.AsyncClient) -> None:
    for path in ("/nowhere", "/process/v1/nowhere", "/system/erp/v1/nowhere"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["type"] == "/problems/not-found"


async def test_wrong_method_is_a_method_not_allowed_problem_with_allow(
    client: httpx.AsyncClient,
) -> None:
    response = await client.delete("/process/v1/orders")

    assert response.status_code == 405
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/method-not-allowed"
    assert "POST" in response.headers["allow"]


async def test_invalid_body_lists_a_pointer_per_invalid_field(client: httpx.AsyncClient) -> None:
    payload = order_payload()
    payload["lines"][0]["quantity"] = 0
    payload["lines"][0]["unit_price"]["amount"] = 1.5
    del payload["currency"]

    response = await client.post("/process/v1/orders", json=payload)

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    pointers = {error["pointer"] for error in response.json()["errors"]}
    assert pointers == {"#/currency", "#/lines/0/quantity", "#/lines/0/unit_price/amount"}


async def test_malformed_json_is_a_validation_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/process/v1/orders", content=b'{"channel": ', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["type"] == "/problems/validation-error"


async def test_invalid_query_parameter_names_the_parameter(client: httpx.AsyncClient) -> None:
    response = await client.get("/system/erp/v1/products", params={"limit": "0"})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "parameter": "limit",
            "in": "query",
            "detail": "Input should be greater than or equal to 1",
        }
    ]


async def test_body_above_the_limit_is_refused_with_413(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    too_big = b"{" + b" " * gateway.settings.max_body_bytes + b"}"

    response = await client.post(
        "/process/v1/orders", content=too_big, headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/payload-too-large"


async def test_streamed_body_above_the_limit_is_refused_with_413(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    chunk = b" " * 65536
    chunks = gateway.settings.max_body_bytes // len(chunk) + 2

    async def body() -> httpx.AsyncByteStream:  # type: ignore[misc]
        for _ in range(chunks):
            yield chunk

    response = await client.post(
        "/process/v1/orders", content=body(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["type"] == "/problems/payload-too-large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_body_that_is_not_json_is_refused_with_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}

    response = await client.post("/process/v1/orders", content=b"channel=x", headers=headers)

    assert response.status_code == 415
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == "/problems/unsupported-media-type"


async def test_correlation_id_is_created_when_absent_and_kept_when_given(
    gateway: Gateway, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    created = await client.get("/healthz")
    kept = await client.post(
        "/process/v1/orders", json=order_payload(), headers={"X-Correlation-ID": "req-42"}
    )
    replaced = await client.get("/healthz", headers={"X-Correlation-ID": "bad id with spaces"})

    assert len(created.headers["x-correlation-id"]) == 32
    assert kept.headers["x-correlation-id"] == "req-42"
    assert kept.json()["history"][0]["correlation_id"] == "req-42"
    assert replaced.headers["x-correlation-id"] != "bad id with spaces"


async def test_problem_carries_the_correlation_id_of_its_request(client: httpx.AsyncClient) -> None:
    response = await client.get("/process/v1/orders/ord_x", headers={"X-Correlation-ID": "c-7"})

    assert response.json()["correlation_id"] == "c-7"
    assert response.headers["x-correlation-id"] == "c-7"
