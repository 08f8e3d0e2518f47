"""A release that gave up while the WMS was down is run again by the exception's retry action,
and its exception resolves once it succeeds."""

from __future__ import annotations

from datetime import timedelta

import httpx

from contracts import OrderStatus
from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from process_api.fulfilment.models import RELEASE_TIMER
from process_api.fulfilment.service import BACKEND_RETRY
from tests.conftest import INTERNAL_SCOPES, register_and_authorize
from tests.process.fulfilment.support import Outage, accepted_order


async def test_retry_releases_the_order_once_the_wms_is_back(
    gateway: Gateway, clock: ManualClock, client: httpx.AsyncClient, wms_outage: Outage
) -> None:
    order_id = await accepted_order(client, "W-RETRY-REL")
    wms_outage.down = True
    deferred = await client.post(f"/process/v1/orders/{order_id}/release")
    assert deferred.status_code == 202, deferred.text

    for _ in range(BACKEND_RETRY.max_attempts + 2):
        clock.advance(BACKEND_RETRY.max_delay)
        while await gateway.scheduler.run_due():
            pass
    _, headers = await register_and_authorize(
        gateway, client, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
    )
    client.headers.update(headers)
    [raised] = (
        await client.get("/process/v1/exceptions", params={"workflow": "fulfilment"})
    ).json()["items"]
    assert raised["code"] == "release_not_confirmed"
    assert raised["failed_step"] == {"kind": RELEASE_TIMER, "key": order_id}

    wms_outage.down = False
    retried = await client.post(
        f"/process/v1/exceptions/{raised['exception_id']}/resolve",
        json={"action": "retry", "note": "WMS is back"},
    )
    assert retried.status_code == 202, retried.text
    clock.advance(timedelta(seconds=1))
    while await gateway.scheduler.run_due():
        pass

    assert (await gateway.orders.require(order_id)).status is OrderStatus.RELEASED
    resolved = (await client.get(f"/process/v1/exceptions/{raised['exception_id']}")).json()
    assert resolved["status"] == "resolved"
