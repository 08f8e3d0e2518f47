"""Retry really re-runs the failed step: an order whose ERP validation gave up while the ERP was
down is accepted once the ERP is back and someone asks for a retry, and its exception resolves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from contracts import OrderStatus
from contracts.exceptions import ExceptionRecord, ExceptionStatus, FailedStep, Severity
from gateway import Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from process_api.exceptions import STEP_FAILED, policy_for
from process_api.order_to_cash.service import VALIDATE_TIMER
from tests.conftest import (
    INTERNAL_SCOPES,
    UvicornThread,
    free_port,
    make_settings,
    register_and_authorize,
    start_gateway,
)
from tests.factories import order_payload, seed_products
from tests.process.conftest import system_api_settings
from tests.process.exceptions.support import ROUTING, exceptions_of


@pytest.fixture
async def gateway(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose system API is a separate uvicorn service, not running at first."""
    port = free_port()
    system_side = start_gateway(make_settings(database_url), clock)
    settings = make_settings(
        database_url,
        exception_routing=ROUTING,
        # Down means connection refused (at once); once the backend is back, its first calls
        # may be slow on a loaded machine, and a timeout there would fail the story.
        system_api_timeout_seconds=10.0,
        **system_api_settings(system_side, f"http://127.0.0.1:{port}"),
    )
    built = start_gateway(settings, clock)
    built.system_side = system_side  # type: ignore[attr-defined]
    built.system_port = port  # type: ignore[attr-defined]
    yield built
    await built.aclose()
    await system_side.aclose()


async def validation_gives_up(gateway: Gateway, clock: ManualClock) -> ExceptionRecord:
    """Let the scheduler retry the ERP validation until its policy gives up; the exception."""
    for _ in range(policy_for("order_capture").retry.max_attempts + 5):
        clock.advance(timedelta(minutes=10))  # the longest backoff of order capture
        while await gateway.scheduler.run_due():
            pass
        raised = exceptions_of(gateway, code=STEP_FAILED)
        if raised:
            [exception] = raised
            return exception
    raise AssertionError("the validation never gave up")


async def test_retry_validates_the_order_once_the_erp_is_back_and_resolves_the_exception(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient
) -> None:
    seed_products(gateway)
    deferred = await client.post("/process/v1/orders", json=order_payload("CH-RETRY-1"))
    assert deferred.status_code == 202, deferred.text
    order_id = deferred.json()["order_id"]

    raised = await validation_gives_up(gateway, clock)

    assert (raised.workflow, raised.subject, raised.channel) == (
        "order_capture",
        f"order/{order_id}",
        "webshop",
    )
    assert raised.failed_step == FailedStep(kind=VALIDATE_TIMER, key=order_id)
    assert (raised.owner_team, raised.severity) == ("order-desk", Severity.HIGH)
    assert raised.object_ids["order_id"] == order_id
    assert "BackendUnavailable" in raised.detail
    clock.advance(timedelta(days=1))
    while await gateway.scheduler.run_due():
        pass
    assert (await gateway.orders.require(order_id)).status is OrderStatus.RESERVED

    # Hours went by: the operator signs in again.
    _, headers = await register_and_authorize(
        gateway, client, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
    )
    client.headers.update(headers)
    system_side: Gateway = gateway.system_side  # type: ignore[attr-defined]
    server = UvicornThread(
        build_app(system_side, run_background=False),
        port=gateway.system_port,  # type: ignore[attr-defined]
    ).start()
    try:
        retried = await client.post(
            f"/process/v1/exceptions/{raised.exception_id}/resolve",
            json={"action": "retry", "note": "ERP is back"},
        )
        assert retried.status_code == 202, retried.text
        assert retried.json()["status"] == "acknowledged"
        assert await gateway.scheduler.run_due() >= 1
    finally:
        server.stop()

    assert (await gateway.orders.require(order_id)).status is OrderStatus.ACCEPTED
    resolved = (await client.get(f"/process/v1/exceptions/{raised.exception_id}")).json()
    assert resolved["status"] == "resolved"
    assert [e["action"] for e in resolved["history"]][-2:] == ["retry", "resolved"]
    # Deciding the order also settled its acknowledgement watch: nothing is left open.
    assert exceptions_of(gateway, status=ExceptionStatus.OPEN) == []
    assert exceptions_of(gateway, status=ExceptionStatus.ACKNOWLEDGED) == []
