"""A served gateway relays and sends webhooks on its own (background tasks of its lifespan)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from gateway import Gateway
from gateway_infra.auth.clients import ClientKind
from tests.conftest import GatewayProcess, fetch_token
from tests.delivery.conftest import Receiver
from tests.factories import seed_products


async def test_a_served_gateway_delivers_a_partners_order_events_to_its_webhook(
    database_url: str, gateway: Gateway, receiver: Receiver, tmp_path: Path
) -> None:
    seed_products(gateway)
    record, secret = gateway.clients.add(
        name="hooked partner",
        kind=ClientKind.PARTNER,
        scopes=["orders:write", "events:read"],
        channel="webshop",
    )
    with GatewayProcess(
        database_url, tmp_path / "gateway.log", GATEWAY_WEBHOOK_ALLOW_LOOPBACK="true"
    ) as served:
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as http:
            token = await fetch_token(http, record.client_id, secret)
            headers = {"Authorization": f"Bearer {token}"}
            made = await http.post(
                "/partner/v2/webhooks",
                json={"url": f"{receiver.url}/hook", "event_types": ["order.accepted"]},
                headers={**headers, "Idempotency-Key": f'"{uuid.uuid4()}"'},
            )
            assert made.status_code == 201, made.text
            receiver.secrets.append(made.json()["secret"])
            order = await http.post(
                "/partner/v2/orders",
                json={
                    "channel_order_id": "SERVED-1",
                    "currency": "EUR",
                    "lines": [
                        {
                            "line_id": "1",
                            "sku": "MUG-RED-350",
                            "quantity": 1,
                            "unit_price": {"amount_minor": 1290, "currency": "EUR"},
                        }
                    ],
                },
                headers={**headers, "Idempotency-Key": f'"{uuid.uuid4()}"'},
            )
            assert order.status_code == 201, order.text
            accepted = await asyncio.to_thread(receiver.wait_for_accepted, 1, timeout=30)

    [event] = accepted
    assert (event["type"], event["subject"]) == (
        "order.accepted",
        f"order/{order.json()['order_id']}",
    )
    assert all(c.verified for c in receiver.calls)
