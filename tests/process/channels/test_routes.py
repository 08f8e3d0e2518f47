"""/v1/channels of the process API: read and update profiles, with ETag versions and If-Match."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from openapi_spec_validator import validate

from gateway import Gateway
from process_api.channels.service import ChannelProfiles
from tests.process.channels.builders import changed_events, profile, profile_json
from tests.process.channels.conftest import HeadersFor


async def test_put_creates_then_replaces_a_profile_and_get_returns_it_with_its_etag(
    http: httpx.AsyncClient,
) -> None:
    created = await http.put("/v1/channels/webshop", json=profile_json())
    replaced = await http.put("/v1/channels/webshop", json=profile_json(name="Shop"))
    read = await http.get("/v1/channels/webshop")

    assert created.status_code == 201, created.text
    assert created.headers["etag"] == '"v1"'
    assert created.headers["location"] == "http://process.test/v1/channels/webshop"
    assert created.json() == profile_json()
    assert replaced.status_code == 200
    assert replaced.headers["etag"] == '"v2"'
    assert read.status_code == 200
    assert read.headers["etag"] == '"v2"'
    assert read.json() == profile_json(name="Shop")


async def test_unknown_channel_is_a_404_problem(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/channels/nowhere")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not-found"


async def test_list_returns_every_profile_by_channel(http: httpx.AsyncClient) -> None:
    for channel in ("webshop", "amazon_de", "marketplace"):
        await http.put(f"/v1/channels/{channel}", json=profile_json(channel))

    response = await http.get("/v1/channels")

    assert response.status_code == 200
    assert [p["channel"] for p in response.json()] == ["amazon_de", "marketplace", "webshop"]


async def test_body_of_another_channel_than_the_path_is_a_422_problem(
    http: httpx.AsyncClient, channels: ChannelProfiles
) -> None:
    response = await http.put("/v1/channels/webshop", json=profile_json("marketplace"))

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "validation-error"
    assert problem["errors"] == [
        {"pointer": "#/channel", "detail": "must equal the channel in the path"}
    ]
    assert await channels.list() == []


async def test_invalid_profile_is_a_422_problem_pointing_at_each_field(
    http: httpx.AsyncClient,
) -> None:
    body = {**profile_json(), "currency": "euro", "availability": {"mode": "percentage"}}

    response = await http.put("/v1/channels/webshop", json=body)

    assert response.status_code == 422
    pointers = {e["pointer"] for e in response.json()["errors"]}
    assert pointers == {"#/currency", "#/availability"}


async def test_unknown_throttling_tier_is_a_422_problem(http: httpx.AsyncClient) -> None:
    response = await http.put("/v1/channels/webshop", json=profile_json(throttling_tier="gold"))

    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/throttling_tier"


async def test_if_match_with_the_current_etag_updates_and_a_stale_one_is_a_412(
    http: httpx.AsyncClient,
) -> None:
    etag = (await http.put("/v1/channels/webshop", json=profile_json())).headers["etag"]
    first = await http.put(
        "/v1/channels/webshop", json=profile_json(name="A"), headers={"If-Match": etag}
    )
    second = await http.put(
        "/v1/channels/webshop", json=profile_json(name="B"), headers={"If-Match": etag}
    )

    assert first.status_code == 200
    assert first.headers["etag"] == '"v2"'
    assert second.status_code == 412
    assert second.headers["content-type"] == "application/problem+json"
    assert second.headers["etag"] == '"v2"'
    problem = second.json()
    assert problem["code"] == "precondition-failed"
    assert (problem["expected_version"], problem["current_version"]) == (1, 2)
    assert (await http.get("/v1/channels/webshop")).json()["name"] == "A"


async def test_if_match_on_a_channel_without_profile_is_a_412(http: httpx.AsyncClient) -> None:
    response = await http.put(
        "/v1/channels/webshop", json=profile_json(), headers={"If-Match": '"v1"'}
    )

    assert response.status_code == 412
    assert "etag" not in response.headers
    assert "does not exist" in response.json()["detail"]


async def test_malformed_if_match_is_a_400_problem(http: httpx.AsyncClient) -> None:
    await http.put("/v1/channels/webshop", json=profile_json())

    response = await http.put(
        "/v1/channels/webshop", json=profile_json(), headers={"If-Match": "v1"}
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "If-Match"


async def test_the_change_is_audited_with_the_calling_client_as_actor(
    http: httpx.AsyncClient, gateway: Gateway
) -> None:
    await http.put("/v1/channels/webshop", json=profile_json())

    [event] = changed_events(gateway)

    assert str(event.data["actor"]).startswith("client:ic_")
    assert event.data["after"] == profile_json()
    assert event.correlation_id is not None


async def test_reading_needs_the_read_scope_and_changing_needs_the_write_scope(
    channels_app: FastAPI, headers_for: HeadersFor, channels: ChannelProfiles
) -> None:
    await channels.put(profile(), actor="ops", expected_version=None)
    reader = await headers_for(frozenset({"process:channels:read"}))
    other = await headers_for(frozenset({"process:orders:read"}))
    transport = httpx.ASGITransport(app=channels_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://process.test") as c:
        anonymous = await c.get("/v1/channels")
        no_scope = await c.get("/v1/channels/webshop", headers=other)
        read = await c.get("/v1/channels/webshop", headers=reader)
        write = await c.put("/v1/channels/webshop", json=profile_json(name="X"), headers=reader)

    assert anonymous.status_code == 401
    assert no_scope.status_code == 403
    assert read.status_code == 200
    assert write.status_code == 403
    assert write.json()["required_scopes"] == ["process:channels:write"]


async def test_openapi_document_is_valid_and_documents_etag_and_412(
    http: httpx.AsyncClient,
) -> None:
    document = (await http.get("/openapi.json")).json()

    validate(document)
    put = document["paths"]["/v1/channels/{channel}"]["put"]
    assert {"200", "201", "400", "401", "403", "412", "422"} <= set(put["responses"])
    assert "ETag" in put["responses"]["201"]["headers"]
    assert put["responses"]["412"]["content"]["application/problem+json"]
