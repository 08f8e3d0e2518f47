"""Signing in to the ops console: the session cookie, refusals, throttling, signing out."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from gateway import Gateway, build_app, operators_of
from gateway_infra.clock import ManualClock
from process_api.audit import AuditLog
from process_api.tables import operator_sessions
from tests.conftest import make_settings, start_gateway
from tests.console.conftest import CONSOLE_URL, PASSWORD, add_operator, form_token, sign_in


async def session_rows(gateway: Gateway) -> int:
    count: int = await gateway.store.read(
        lambda conn: conn.execute(select(func.count()).select_from(operator_sessions)).scalar_one()
    )
    return count


PAGES = ["/ops/", "/ops/exceptions", "/ops/dead-letters", "/ops/audit", "/ops/orders/ord_1"]


async def test_a_right_password_opens_a_secure_http_only_strict_session(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    add_operator(gateway)

    response = await sign_in(browser)

    assert response.status_code == 303
    assert response.headers["location"] == "/ops/"
    [cookie] = [c for c in response.headers.get_list("set-cookie") if c.startswith("ops_session=")]
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "secure" in flags
    assert "samesite=strict" in flags
    assert "path=/ops" in flags
    assert f"max-age={gateway.settings.ops_session_seconds}" in flags
    overview = await browser.get("/ops/")
    assert overview.status_code == 200
    assert "Alice Ops" in overview.text
    assert "default-src 'none'" in overview.headers["content-security-policy"]
    assert overview.headers["x-frame-options"] == "DENY"


async def test_the_secure_flag_is_dropped_only_when_the_setting_says_plain_http(
    database_url: str, clock: ManualClock
) -> None:
    plain = start_gateway(make_settings(database_url, ops_cookie_secure=False), clock)
    try:
        add_operator(plain)
        transport = httpx.ASGITransport(app=build_app(plain, run_background=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            response = await sign_in(c)
        assert response.status_code == 303
        cookie = next(
            c for c in response.headers.get_list("set-cookie") if c.startswith("ops_session=")
        )
        flags = [part.strip().lower() for part in cookie.split(";")]
        assert "secure" not in flags
        assert "httponly" in flags
        assert "samesite=strict" in flags
    finally:
        await plain.aclose()


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_without_a_session_sends_the_browser_to_sign_in(
    browser: httpx.AsyncClient, path: str
) -> None:
    response = await browser.get(path)

    assert response.status_code == 303
    assert response.headers["location"].startswith("/ops/sign-in?next=")
    assert "ops" in response.headers["location"]


async def test_after_signing_in_the_operator_lands_on_the_page_they_asked_for(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    add_operator(gateway)
    asked = await browser.get("/ops/exceptions", params={"severity": "high"})
    form = await browser.get(asked.headers["location"])

    response = await browser.post(
        asked.headers["location"],
        data={"username": "alice", "password": PASSWORD, "form_token": form_token(form.text)},
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/ops/exceptions?severity=high"


async def test_a_next_page_outside_the_console_is_not_followed(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    add_operator(gateway)
    form = await browser.get("/ops/sign-in")

    response = await browser.post(
        "/ops/sign-in?next=//evil.example/ops/",
        data={"username": "alice", "password": PASSWORD, "form_token": form_token(form.text)},
    )

    assert response.headers["location"] == "/ops/"


async def test_a_wrong_password_or_unknown_operator_is_refused_and_audited(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    add_operator(gateway)

    wrong = await sign_in(browser, password="not the password")
    unknown = await sign_in(browser, username="mallory")

    assert wrong.status_code == 401
    assert unknown.status_code == 401
    assert "Wrong username or password" in wrong.text
    assert not any(c.startswith("ops_session=") for c in wrong.headers.get_list("set-cookie"))
    assert (await browser.get("/ops/")).status_code == 303
    refused = await AuditLog(gateway.store).entries(action="operator.sign_in_refused")
    assert [e.actor for e in refused] == ["operator:(unknown)", "operator:alice"]
    assert refused[0].subject.startswith("operator/(unknown):")
    assert refused[1].subject == "operator/alice"


async def test_an_unknown_username_is_audited_as_a_hash_never_as_typed(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    """People type their password into the username field; it must not land in the audit log."""
    add_operator(gateway)

    for typed in ("hunter2-secret", "hunter2-secret", "someone-else"):
        assert (await sign_in(browser, username=typed)).status_code == 401

    refused = await AuditLog(gateway.store).entries(action="operator.sign_in_refused")
    stored = [(e.actor, e.subject, e.before, e.after) for e in refused]
    assert "hunter2" not in repr(stored) and "someone" not in repr(stored)
    assert {e.actor for e in refused} == {"operator:(unknown)"}
    other, again, first = (e.subject for e in refused)  # newest first
    assert again == first  # the same name tried twice shows as such
    assert other != first
    assert len(first) == len("operator/(unknown):") + 12


async def test_a_sign_in_form_not_sent_by_the_console_is_refused(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    add_operator(gateway)
    await browser.get("/ops/sign-in")

    response = await browser.post(
        "/ops/sign-in",
        data={"username": "alice", "password": PASSWORD, "form_token": "forged"},
    )

    assert response.status_code == 403
    assert (await browser.get("/ops/")).status_code == 303


async def test_a_non_ascii_form_or_csrf_token_is_refused_as_stale_not_an_error(
    gateway: Gateway, browser: httpx.AsyncClient
) -> None:
    add_operator(gateway)
    await browser.get("/ops/sign-in")

    sign_in_form = await browser.post(
        "/ops/sign-in", data={"username": "alice", "password": PASSWORD, "form_token": "é"}
    )
    assert (await sign_in(browser)).status_code == 303
    sign_out = await browser.post("/ops/sign-out", data={"csrf_token": "é"})

    assert sign_in_form.status_code == 403
    assert "The form expired" in sign_in_form.text
    assert sign_out.status_code == 403
    assert "The form is stale" in sign_out.text
    assert (await browser.get("/ops/")).status_code == 200  # still signed in


async def test_sign_in_attempts_are_throttled_even_with_the_right_password(
    database_url: str, clock: ManualClock
) -> None:
    tight = start_gateway(
        make_settings(
            database_url,
            ops_sign_in_throttle={"burst": 3, "burst_window_seconds": 600, "sustained": 10},
        ),
        clock,
    )
    try:
        add_operator(tight)
        transport = httpx.ASGITransport(app=build_app(tight, run_background=False))
        async with httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL) as c:
            guesses = [(await sign_in(c, password=f"guess {n}")).status_code for n in range(3)]
            blocked = await sign_in(c)
        assert guesses == [401, 401, 401]
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert "Too many sign-in attempts" in blocked.text
    finally:
        await tight.aclose()


def browser_at(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url=CONSOLE_URL)


async def test_guesses_from_another_address_do_not_lock_the_operator_out(
    gateway: Gateway, app: FastAPI
) -> None:
    add_operator(gateway)
    async with browser_at(app, "203.0.113.9") as stranger:
        guesses = [(await sign_in(stranger, password=f"guess {n}")).status_code for n in range(6)]
    async with browser_at(app, "198.51.100.7") as alice:
        own = await sign_in(alice)

    assert guesses == [401] * 5 + [429]  # the tight limit: this username from this address
    assert own.status_code == 303


async def test_successful_sign_ins_are_not_counted_against_the_limits(
    gateway: Gateway, app: FastAPI
) -> None:
    add_operator(gateway)
    async with browser_at(app, "198.51.100.7") as alice:
        answers = [(await sign_in(alice)).status_code for _ in range(8)]

    assert answers == [303] * 8


async def test_failed_sign_ins_from_many_addresses_meet_the_looser_cap_per_username(
    database_url: str, clock: ManualClock
) -> None:
    capped = start_gateway(
        make_settings(
            database_url,
            ops_sign_in_wide_throttle={"burst": 4, "burst_window_seconds": 600, "sustained": 10},
        ),
        clock,
    )
    try:
        add_operator(capped)
        app = build_app(capped, run_background=False)
        guesses = []
        for n in range(4):
            async with browser_at(app, f"203.0.113.{n + 1}") as stranger:
                guesses.append((await sign_in(stranger, password="guess")).status_code)
        async with browser_at(app, "198.51.100.7") as alice:
            capped_out = await sign_in(alice)
            other_user = await sign_in(alice, username="bob")
    finally:
        await capped.aclose()

    assert guesses == [401] * 4
    assert capped_out.status_code == 429
    assert other_user.status_code == 401  # the cap is on alice's name, not on this address


async def test_signing_out_ends_the_session_on_the_server(
    gateway: Gateway, signed_in: httpx.AsyncClient
) -> None:
    overview = await signed_in.get("/ops/")
    cookie = signed_in.cookies.get("ops_session")

    out = await signed_in.post("/ops/sign-out", data={"csrf_token": form_token(overview.text)})

    assert out.status_code == 303
    assert out.headers["location"] == "/ops/sign-in?notice=signed_out"
    assert cookie is not None
    signed_in.cookies.set("ops_session", cookie, path="/ops")  # a copy kept is worth nothing
    assert (await signed_in.get("/ops/")).status_code == 303
    actions = [e.action for e in await AuditLog(gateway.store).entries(actor="operator:alice")]
    assert actions == ["operator.signed_out", "operator.signed_in"]


async def test_a_session_ends_when_it_expires_or_the_operator_is_disabled(
    gateway: Gateway, app: FastAPI, clock: ManualClock, signed_in: httpx.AsyncClient
) -> None:
    assert (await signed_in.get("/ops/")).status_code == 200
    clock.advance(timedelta(seconds=gateway.settings.ops_session_seconds + 1))
    assert (await signed_in.get("/ops/")).status_code == 303

    assert (await sign_in(signed_in)).status_code == 303
    assert await session_rows(gateway) == 1  # the expired one went as the new one started
    operators_of(gateway).disable_sync("alice", actor="test")

    assert (await signed_in.get("/ops/")).status_code == 303
    assert (await sign_in(signed_in)).status_code == 401
    assert await session_rows(gateway) == 0
