"""System of record per object and field: validated at start-up, enforced on every write."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway import Gateway, build_app, build_gateway
from gateway_infra.auth.clients import ClientKind
from gateway_infra.clock import ManualClock
from gateway_infra.tables import outbox
from system_api.ownership import (
    DEFAULT_SYSTEM_OF_RECORD,
    OwnershipConfigError,
    OwnershipMap,
)
from tests.conftest import (
    BASE_URL,
    INTERNAL_SCOPES,
    make_settings,
    register_and_authorize,
    start_gateway,
)


def test_the_built_in_map_gives_every_known_field_an_owner() -> None:
    ownership = OwnershipMap.from_config(DEFAULT_SYSTEM_OF_RECORD)

    assert ownership.owners[("product", "list_price")] == "erp"
    assert ownership.owners[("inventory", "on_hand")] == "wms"
    assert ownership.owners[("reservation", "quantity")] == "gateway"
    assert ownership.owners[("order", "channel_order_id")] == "marketplace"


def test_a_map_with_mistakes_is_refused_with_every_mistake_listed() -> None:
    config = {
        **DEFAULT_SYSTEM_OF_RECORD,
        "product.colour": "erp",
        "inventory.on_hand": "spreadsheet",
        "rocket.*": "wms",
    }

    with pytest.raises(OwnershipConfigError) as refused:
        OwnershipMap.from_config(config)

    message = str(refused.value)
    assert "unknown field 'colour'" in message
    assert "unknown system 'spreadsheet'" in message
    assert "unknown object 'rocket'" in message


def test_a_map_that_leaves_a_field_without_owner_is_refused() -> None:
    config = {k: v for k, v in DEFAULT_SYSTEM_OF_RECORD.items() if k != "inventory.*"}

    with pytest.raises(OwnershipConfigError, match=r"inventory\.on_hand"):
        OwnershipMap.from_config(config)


def test_the_gateway_refuses_to_start_with_an_invalid_map(database_url: str) -> None:
    with pytest.raises(OwnershipConfigError):
        build_gateway(make_settings(database_url, system_of_record={"order.status": "erp!"}))


@pytest.fixture
async def erp_owns_stock(database_url: str, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A retailer whose ERP, not the warehouse, is the record of on-hand stock."""
    gateway = start_gateway(
        make_settings(database_url, system_of_record={"inventory.on_hand": "erp"}), clock
    )
    await gateway.embedded_wms.ensure_warehouse("WH", "Main warehouse")
    yield gateway
    await gateway.aclose()


async def test_a_write_to_a_system_that_does_not_own_the_field_is_refused_and_recorded(
    erp_owns_stock: Gateway,
) -> None:
    app: FastAPI = build_app(erp_owns_stock, run_background=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        _, headers = await register_and_authorize(
            erp_owns_stock, http, kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
        )
        response = await http.post(
            "/system/wms/v1/stock/adjustments",
            json={"sku": "MUG-RED-350", "warehouse": "WH", "reason": "receipt",
                  "reference": "GRN-1", "delta": 5},
            headers=headers,
        )  # fmt: skip

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "/problems/not-system-of-record"
    assert problem["owners"] == {"inventory.on_hand": "erp"}
    assert await erp_owns_stock.embedded_wms.stock_levels(sku="MUG-RED-350") == []
    events = erp_owns_stock.database.run_read(
        lambda conn: conn.execute(
            select(outbox.c.type, outbox.c.data).where(
                outbox.c.type == "policy.ownership_violation"
            )
        ).all()
    )
    assert len(events) == 1
    assert events[0].data == {
        "writer": "wms",
        "object": "inventory",
        "fields": {"on_hand": "erp"},
    }
