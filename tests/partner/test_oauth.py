"""OAuth2 at the gateway's root and token verification in every layer (RFC 6749, 6750, 9068)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import ManualClock
from tests.conftest import BASE_URL, INTERNAL_SCOPES, fetch_token, make_settings, start_gateway

PARTNER_READ = "/partner/v1/orders/ord_anything"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def header_of(token: str) -> dict[str, Any]:
    head = token.split(".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return decoded


@pytest.fixture
def partner_secret(gateway: Gateway) -> tuple[str, str]:
    record, secret = gateway.clients.add(
        name="webshop", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
    )
    return record.client_id, secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the token endpoint ----------------------------------------------------------------------


async def test_client_secret_basic_gets_an_rfc_9068_access_token(
    gateway: Gateway, anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    client_id, secret = partner_secret

    response = await anonymous.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert set(body["scope"].split()) == set(PARTNER_SCOPES)
    header = header_of(body["access_token"])
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    claims = claims_of(body["access_token"])
    assert claims["iss"] == BASE_URL
    assert claims["aud"] == [f"{BASE_URL}/partner"]
    assert claims["sub"] == claims["client_id"] == client_id
    assert claims["exp"] - claims["iat"] == 900
    assert len(claims["jti"]) == 32


async def test_client_secret_post_works_and_scope_can_be_narrowed(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    client_id, secret = partner_secret

    response = await anonymous.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": "orders:read",
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "orders:read"


async def test_wrong_secret_over_basic_is_invalid_client_with_a_challenge(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    client_id, _ = partner_secret

    response = await anonymous.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, "wrong")
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "scope": "process:orders:write"}, "invalid_scope"),
        ({"grant_type": "client_credentials", "scope": "admin"}, "invalid_scope"),
    ],
)
async def test_token_endpoint_errors_follow_rfc_6749(
    anonymous: httpx.AsyncClient,
    partner_secret: tuple[str, str],
    form: dict[str, str],
    error: str,
) -> None:
    response = await anonymous.post("/oauth/token", data=form, auth=partner_secret)

    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_token_endpoint_wants_a_form_with_no_repeated_parameter(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    as_json = await anonymous.post(
        "/oauth/token", json={"grant_type": "client_credentials"}, auth=partner_secret
    )
    repeated = await anonymous.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=partner_secret,
    )

    assert as_json.status_code == repeated.status_code == 400
    assert as_json.json()["error"] == repeated.json()["error"] == "invalid_request"


async def test_disabled_client_gets_no_token(
    gateway: Gateway, anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    gateway.clients.disable(partner_secret[0])

    response = await anonymous.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=partner_secret
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_metadata_and_jwks_describe_the_server(
    gateway: Gateway, anonymous: httpx.AsyncClient
) -> None:
    metadata = (await anonymous.get("/.well-known/oauth-authorization-server")).json()
    jwks = (await anonymous.get("/.well-known/jwks.json")).json()

    assert metadata["issuer"] == BASE_URL
    assert metadata["token_endpoint"] == f"{BASE_URL}/oauth/token"
    assert metadata["jwks_uri"] == f"{BASE_URL}/.well-known/jwks.json"
    assert metadata["grant_types_supported"] == ["client_credentials"]
    assert set(metadata["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert len(jwks["keys"]) == 2  # current and next
    assert all("d" not in key for key in jwks["keys"])


# -- verification in every layer -------------------------------------------------------------


async def _partner_token(anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]) -> str:
    return await fetch_token(anonymous, *partner_secret)


async def test_no_token_is_401_with_a_bearer_challenge(anonymous: httpx.AsyncClient) -> None:
    for path in (PARTNER_READ, "/process/v1/orders/x", "/system/erp/v1/products"):
        response = await anonymous.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"].startswith("Bearer realm=")
        assert response.headers["content-type"] == "application/problem+json"


async def test_valid_token_passes_and_expired_token_is_refused(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str], clock: ManualClock
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    fresh = await anonymous.get(PARTNER_READ, headers=bearer(token))

    clock.advance(timedelta(seconds=900 + 11))  # lifetime plus the 10 s leeway
    expired = await anonymous.get(PARTNER_READ, headers=bearer(token))

    assert fresh.status_code == 404  # authenticated; the order does not exist
    assert expired.status_code == 401
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]


async def test_token_inside_the_leeway_is_still_accepted(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str], clock: ManualClock
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    clock.advance(timedelta(seconds=905))

    assert (await anonymous.get(PARTNER_READ, headers=bearer(token))).status_code == 404


async def test_token_not_yet_valid_is_refused(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str], clock: ManualClock
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    clock.set(clock.now() - timedelta(minutes=5))  # this replica's clock is behind the issuer's

    response = await anonymous.get(PARTNER_READ, headers=bearer(token))

    assert response.status_code == 401


async def test_a_token_for_one_layer_is_refused_by_the_others(
    gateway: Gateway, anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    partner_token = await _partner_token(anonymous, partner_secret)
    record, secret = gateway.clients.add(
        name="ops", kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
    )
    internal_token = await fetch_token(anonymous, record.client_id, secret)

    on_process = await anonymous.get("/process/v1/orders/x", headers=bearer(partner_token))
    on_system = await anonymous.get("/system/erp/v1/products", headers=bearer(partner_token))
    on_partner = await anonymous.get(PARTNER_READ, headers=bearer(internal_token))

    assert on_process.status_code == on_system.status_code == on_partner.status_code == 401


async def test_a_token_from_another_issuer_is_refused(
    database_url: str, clock: ManualClock, anonymous: httpx.AsyncClient
) -> None:
    other = start_gateway(
        make_settings(database_url, public_base_url="https://other.example"), clock
    )
    try:
        record, secret = other.clients.add(
            name="x", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
        )
        async with _client_of(other) as other_http:
            token = await fetch_token(other_http, record.client_id, secret)
    finally:
        await other.aclose()

    response = await anonymous.get(PARTNER_READ, headers=bearer(token))

    assert claims_of(token)["iss"] == "https://other.example"
    assert response.status_code == 401


async def test_a_token_signed_by_an_unknown_key_is_refused(
    tmp_path: Any, clock: ManualClock, anonymous: httpx.AsyncClient
) -> None:
    from tests.conftest import migrated_sqlite

    url = migrated_sqlite(tmp_path / "elsewhere.db")
    elsewhere = start_gateway(make_settings(url), clock)
    try:
        record, secret = elsewhere.clients.add(
            name="x", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
        )
        async with _client_of(elsewhere) as http:
            token = await fetch_token(http, record.client_id, secret)
    finally:
        await elsewhere.aclose()

    response = await anonymous.get(PARTNER_READ, headers=bearer(token))

    assert response.status_code == 401
    assert "unknown signing key" in response.json()["detail"]


def _client_of(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(gateway, run_background=False)),
        base_url=BASE_URL,
    )


def _forge(header: dict[str, Any], claims: dict[str, Any], key: Any, alg: str) -> str:
    return jwt.encode(header, claims, key, algorithms=[alg])


async def test_typ_other_than_at_jwt_is_refused_even_when_properly_signed(
    gateway: Gateway, anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    signing = gateway.keys.ring().signing
    forged = _forge(
        {"alg": "ES256", "typ": "JWT", "kid": signing.kid}, claims_of(token), signing, "ES256"
    )

    response = await anonymous.get(PARTNER_READ, headers=bearer(forged))

    assert response.status_code == 401
    assert "at+jwt" in response.json()["detail"]


async def test_alg_none_is_refused(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "none", "typ": "at+jwt", "kid": header_of(token)["kid"]}).encode()
    ).rstrip(b"=")
    unsigned = f"{header.decode()}.{token.split('.')[1]}."

    response = await anonymous.get(PARTNER_READ, headers=bearer(unsigned))

    assert response.status_code == 401


async def test_hs256_signed_with_the_public_key_is_refused(
    gateway: Gateway, anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    signing = gateway.keys.ring().signing
    public_pem = signing.as_pem(private=False)
    hmac_key = OctKey.import_key(base64.urlsafe_b64encode(public_pem).decode())
    forged = jwt.encode(
        {"alg": "HS256", "typ": "at+jwt", "kid": signing.kid},
        claims_of(token),
        hmac_key,
        algorithms=["HS256"],
    )

    response = await anonymous.get(PARTNER_READ, headers=bearer(forged))

    assert response.status_code == 401


async def test_tampered_claims_fail_the_signature(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    head, _, signature = token.split(".")
    claims = {**claims_of(token), "scope": "orders:read orders:write events:read admin"}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    response = await anonymous.get(PARTNER_READ, headers=bearer(f"{head}.{body}.{signature}"))

    assert response.status_code == 401


async def test_missing_scope_is_403_insufficient_scope(
    gateway: Gateway, anonymous: httpx.AsyncClient
) -> None:
    record, secret = gateway.clients.add(
        name="reader", kind=ClientKind.PARTNER, scopes={"inventory:read"}, channel="webshop"
    )
    token = await fetch_token(anonymous, record.client_id, secret)

    response = await anonymous.get(PARTNER_READ, headers=bearer(token))

    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer realm="partner", error="insufficient_scope", scope="orders:read"'
    )


async def test_a_disabled_clients_tokens_stop_working_within_a_second(
    gateway: Gateway,
    anonymous: httpx.AsyncClient,
    partner_secret: tuple[str, str],
    clock: ManualClock,
    database_url: str,
) -> None:
    token = await _partner_token(anonymous, partner_secret)
    assert (await anonymous.get(PARTNER_READ, headers=bearer(token))).status_code == 404

    # Another process (the CLI, another replica) disables the client.
    operator = start_gateway(gateway.settings, clock)
    operator.clients.disable(partner_secret[0])
    await operator.aclose()
    clock.advance(timedelta(seconds=1.01))

    response = await anonymous.get(PARTNER_READ, headers=bearer(token))

    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]


async def test_rotation_keeps_old_tokens_valid_through_the_grace_period(
    gateway: Gateway,
    anonymous: httpx.AsyncClient,
    partner_secret: tuple[str, str],
    clock: ManualClock,
) -> None:
    old_token = await _partner_token(anonymous, partner_secret)
    old_kid = header_of(old_token)["kid"]

    rotated = gateway.keys.rotate()
    new_token = await _partner_token(anonymous, partner_secret)
    jwks_kids = {k["kid"] for k in (await anonymous.get("/.well-known/jwks.json")).json()["keys"]}

    assert rotated["retired"] == old_kid
    assert header_of(new_token)["kid"] == rotated["current"] != old_kid
    assert jwks_kids == {rotated["retired"], rotated["current"], rotated["next"]}
    assert (await anonymous.get(PARTNER_READ, headers=bearer(old_token))).status_code == 404
    assert (await anonymous.get(PARTNER_READ, headers=bearer(new_token))).status_code == 404


async def test_a_retired_key_leaves_the_jwks_after_its_grace_period(
    gateway: Gateway, anonymous: httpx.AsyncClient, clock: ManualClock
) -> None:
    rotated = gateway.keys.rotate()
    clock.advance(timedelta(seconds=gateway.settings.signing_key_grace_seconds + 1))
    gateway.keys.invalidate()

    kids = {k["kid"] for k in (await anonymous.get("/.well-known/jwks.json")).json()["keys"]}

    assert rotated["retired"] not in kids
    assert kids == {rotated["current"], rotated["next"]}


async def test_private_keys_are_stored_encrypted(gateway: Gateway) -> None:
    from sqlalchemy import select

    from gateway_infra.tables import signing_keys

    stored = gateway.database.run_read(
        lambda conn: list(conn.execute(select(signing_keys.c.private_key)).scalars())
    )

    assert stored
    assert all(value.startswith("v1.") and "PRIVATE KEY" not in value for value in stored)


@pytest.fixture
async def served(gateway: Gateway) -> AsyncIterator[str]:
    from tests.conftest import UvicornThread

    server = UvicornThread(build_app(gateway, run_background=False)).start()
    yield server.url
    server.stop()


def test_authlibs_oauth2_client_gets_a_token_and_calls_the_api(
    gateway: Gateway, partner_secret: tuple[str, str], served: str
) -> None:
    from authlib.integrations.requests_client import OAuth2Session

    client_id, secret = partner_secret
    with OAuth2Session(client_id, secret, scope="orders:read") as session:
        token = session.fetch_token(f"{served}/oauth/token", grant_type="client_credentials")
        response = session.get(f"{served}{PARTNER_READ}")

    assert token["token_type"] == "Bearer"
    assert response.status_code == 404  # authenticated and authorised: the order is unknown
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"\xff:\xff").decode(),
        "Basic not-base64!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ],
)
async def test_unreadable_basic_credentials_are_invalid_client_not_a_server_error(
    anonymous: httpx.AsyncClient, authorization: str
) -> None:
    response = await anonymous.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": authorization},
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_unknown_client_and_wrong_secret_look_the_same(
    anonymous: httpx.AsyncClient, partner_secret: tuple[str, str]
) -> None:
    form = {"grant_type": "client_credentials"}
    wrong_secret = await anonymous.post("/oauth/token", data=form, auth=(partner_secret[0], "x"))
    unknown = await anonymous.post("/oauth/token", data=form, auth=("pc_" + "0" * 20, "x"))
    odd_id = await anonymous.post(
        "/oauth/token", data={**form, "client_id": "a\x00b", "client_secret": "x"}
    )

    assert wrong_secret.status_code == unknown.status_code == 401
    assert wrong_secret.json() == unknown.json()
    assert odd_id.status_code in (400, 401)
    assert odd_id.json()["error"] == "invalid_client"


async def test_switching_the_signing_algorithm_takes_effect_through_rotation(
    database_url: str, clock: ManualClock
) -> None:
    gateway = start_gateway(make_settings(database_url), clock)  # ES256 keys
    gateway.keys.rotate()
    await gateway.aclose()
    rs256 = start_gateway(make_settings(database_url, signing_alg="RS256"), clock)
    record, secret = rs256.clients.add(
        name="x", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
    )
    try:
        async with _client_of(rs256) as http:
            before = await fetch_token(http, record.client_id, secret)
            rs256.keys.rotate()  # promotes the ES256 "next" key made before the switch
            rs256.keys.rotate()  # now an RS256 key signs
            after = await fetch_token(http, record.client_id, secret)
            still_valid = await http.get(PARTNER_READ, headers=bearer(before))
            valid = await http.get(PARTNER_READ, headers=bearer(after))
    finally:
        await rs256.aclose()

    assert header_of(before)["alg"] == "ES256"
    assert header_of(after)["alg"] == "RS256"
    assert still_valid.status_code == valid.status_code == 404


async def test_a_token_already_accepted_is_checked_again_on_every_request(
    gateway: Gateway,
    anonymous: httpx.AsyncClient,
    partner_secret: tuple[str, str],
    clock: ManualClock,
) -> None:
    """The verifier remembers signatures it checked; never what the claims and keys say."""
    token = await _partner_token(anonymous, partner_secret)
    accepted = [(await anonymous.get(PARTNER_READ, headers=bearer(token))).status_code]
    accepted.append((await anonymous.get(PARTNER_READ, headers=bearer(token))).status_code)

    other_layer = await anonymous.get("/process/v1/orders/x", headers=bearer(token))
    started = clock.now()
    clock.set(started - timedelta(minutes=5))
    not_yet_valid = await anonymous.get(PARTNER_READ, headers=bearer(token))
    clock.set(started)
    accepted.append((await anonymous.get(PARTNER_READ, headers=bearer(token))).status_code)
    clock.set(started + timedelta(seconds=gateway.settings.access_token_lifetime_seconds + 60))
    expired = await anonymous.get(PARTNER_READ, headers=bearer(token))
    clock.set(started)
    accepted.append((await anonymous.get(PARTNER_READ, headers=bearer(token))).status_code)
    tampered_head, _, signature = token.split(".")
    claims = claims_of(token) | {"channel": "marketplace"}
    forged_body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = await anonymous.get(
        PARTNER_READ, headers=bearer(f"{tampered_head}.{forged_body}.{signature}")
    )
    gateway.keys.rotate()
    gateway.keys.rotate()
    clock.advance(timedelta(seconds=gateway.settings.signing_key_grace_seconds + 1))
    gateway.keys.invalidate()
    key_gone = await anonymous.get(PARTNER_READ, headers=bearer(token))

    assert accepted == [404, 404, 404, 404]
    assert other_layer.status_code == 401
    assert not_yet_valid.status_code == 401
    assert expired.status_code == 401
    assert forged.status_code == 401
    assert key_gone.status_code == 401


async def test_a_remembered_token_is_refused_at_its_expiry_by_every_request_at_once(
    gateway: Gateway,
    anonymous: httpx.AsyncClient,
    partner_secret: tuple[str, str],
    clock: ManualClock,
) -> None:
    """Many requests checking one remembered token together (while the key ring is read again)
    are each refused with 401, exactly when the full check would refuse it."""
    token = await _partner_token(anonymous, partner_secret)
    accepted = await anonymous.get(PARTNER_READ, headers=bearer(token))
    settings = gateway.settings
    clock.advance(
        timedelta(seconds=settings.access_token_lifetime_seconds + settings.token_leeway_seconds)
    )
    gateway.keys.invalidate()  # the next look at the ring awaits the database

    answers = await asyncio.gather(
        *(anonymous.get(PARTNER_READ, headers=bearer(token)) for _ in range(5))
    )

    assert accepted.status_code == 404
    assert [answer.status_code for answer in answers] == [401] * 5
