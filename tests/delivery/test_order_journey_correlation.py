"""One order followed from the partner's POST to the shipment webhook: the correlation id of the
request that created it (its origin) is in the log lines, in every event of its journey and in
the webhook payloads; each later request keeps its own correlation id beside it, and the buyer's
personal data never reaches a log line."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import ManualClock
from gateway_infra.logging import JsonFormatter, PersonalDataFilter
from tests.conftest import BASE_URL, register_and_authorize
from tests.delivery.conftest import Receiver, pump_until_settled
from tests.process.fulfilment.support import package, shipment, stock_everything, two_products

BUYER_NAME = "Erika Mustermann"
BUYER_EMAIL = "erika.mustermann@example.org"
BUYER_PHONE = "+49 30 1234 5678"
BUYER_STREET = "Heidestrasse 17"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every log line of the test as the gateway writes it: JSON, personal data redacted."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _buyer() -> dict[str, Any]:
    address = {
        "name": BUYER_NAME,
        "line1": BUYER_STREET,
        "city": "Köln",
        "postal_code": "50667",
        "country": "DE",
    }
    return {
        "customer": {
            "name": BUYER_NAME,
            "email": BUYER_EMAIL,
            "phone": BUYER_PHONE,
            "shipping_address": address,
        },
        "shipping_address": address,
    }


async def test_one_orders_origin_correlation_id_is_in_its_logs_events_and_webhooks(
    gateway: Gateway,
    app: FastAPI,
    client: httpx.AsyncClient,
    receiver: Receiver,
    clock: ManualClock,
    log_lines: io.StringIO,
) -> None:
    await stock_everything(gateway, *two_products())
    origin = f"partner-{uuid.uuid4().hex[:12]}"
    release_id, shipment_id = f"release-{origin}", f"warehouse-{origin}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=BASE_URL
    ) as webshop:
        _, auth = await register_and_authorize(
            gateway,
            webshop,
            kind=ClientKind.PARTNER,
            scopes=frozenset(PARTNER_SCOPES),
            channel="webshop",
        )
        webshop.headers.update(auth)
        hook = await webshop.post(
            "/partner/v2/webhooks",
            json={
                "url": f"{receiver.url}/hook",
                "event_types": ["order.accepted", "shipment.recorded", "order.shipped"],
            },
            headers={"Idempotency-Key": f'"{uuid.uuid4()}"'},
        )
        assert hook.status_code == 201, hook.text
        receiver.secrets.append(hook.json()["secret"])
        created = await webshop.post(
            "/partner/v2/orders",
            json={
                "channel_order_id": "JOURNEY-1",
                "currency": "EUR",
                "lines": [
                    {
                        "line_id": "1",
                        "sku": "MUG-RED-350",
                        "quantity": 1,
                        "unit_price": {"amount_minor": 1290, "currency": "EUR"},
                    }
                ],
                **_buyer(),
            },
            headers={"Idempotency-Key": f'"{uuid.uuid4()}"', "X-Correlation-ID": origin},
        )
    assert created.status_code == 201, created.text
    assert created.headers["x-correlation-id"] == origin
    order_id = created.json()["order_id"]

    clock.advance(timedelta(seconds=1))
    released = await client.post(
        f"/process/v1/orders/{order_id}/release", headers={"X-Correlation-ID": release_id}
    )
    assert released.status_code == 200, released.text
    clock.advance(timedelta(seconds=1))
    shipped = await client.post(
        f"/process/v1/orders/{order_id}/shipments",
        json=shipment(order_id, package("PKG-1", ("1", "MUG-RED-350", 1))),
        headers={"X-Correlation-ID": shipment_id},
    )
    assert shipped.status_code == 201, shipped.text
    await pump_until_settled(gateway, clock)

    # The webhooks: every payload names the order's origin; each keeps its own request's id.
    calls = [c for c in receiver.calls_to("/hook") if c.status == 204]
    received = {c.event["type"]: c for c in calls}
    assert set(received) == {"order.accepted", "shipment.recorded", "order.shipped"}
    for call in calls:
        assert call.event["origin_correlation_id"] == origin
        assert call.headers["x-correlation-id"] == call.event["correlation_id"]
        assert call.headers["traceparent"].startswith("00-")
    assert received["order.accepted"].event["correlation_id"] == origin
    assert received["shipment.recorded"].event["correlation_id"] == shipment_id
    assert received["order.shipped"].event["causation_id"] == shipment_id

    # The journey: the three requests in order, every event of the order with its origin.
    journey = await client.get(f"/process/v1/orders/{order_id}/journey")
    assert journey.status_code == 200, journey.text
    body = journey.json()
    assert body["origin_correlation_id"] == origin
    assert body["correlation_ids"] == [origin, release_id, shipment_id]
    events = [s for s in body["steps"] if s["kind"] == "event"]
    assert {
        "order.received",
        "order.accepted",
        "erp.sales_order.created",
        "order.released",
        "wms.fulfilment.released",
        "shipment.recorded",
        "order.shipped",
    } <= {e["type"] for e in events}
    assert {e["origin_correlation_id"] for e in events} == {origin}
    statuses = [s["to_status"] for s in body["steps"] if s["kind"] == "status_change"]
    assert statuses[0] == "received" and statuses[-1] == "shipped"
    assert [s["at"] for s in body["steps"]] == sorted(s["at"] for s in body["steps"])

    # The logs: the order's intake under its origin, its webhooks naming it; no buyer data.
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert any(
        line["message"] == "order received"
        and line["correlation_id"] == origin
        and line["order_id"] == order_id
        and line.get("trace_id")
        for line in lines
    )
    relayed = [line for line in lines if line["message"] == "webhook deliveries created"]
    assert {line["origin_correlation_id"] for line in relayed} == {origin}
    assert {line["correlation_id"] for line in relayed} == {origin, shipment_id}
    delivered = [line for line in lines if line["message"] == "webhook delivered"]
    assert len(delivered) == 3
    assert {line["origin_correlation_id"] for line in delivered} == {origin}
    text = log_lines.getvalue()
    for personal in (BUYER_NAME, BUYER_EMAIL, BUYER_PHONE, BUYER_STREET):
        assert personal not in text
