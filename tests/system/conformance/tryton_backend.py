"""The Tryton backend of the conformance suite: the Tryton adapters on a real Tryton server.

One server per test module (a private copy of the seeded template, see tests/tryton/harness.py);
the tests stay independent because each one uses references of its own. Every test gets fresh
adapters (their httpx client and guard belong to the test's event loop) and a probe that looks
into Tryton through a separate JSON-RPC session.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from gateway_infra.clock import ManualClock
from gateway_infra.resilience import CircuitBreaker, GuardPolicy
from system_api.backends.tryton import TrytonClient, TrytonConnection, TrytonErp, TrytonWms
from tests.system.conformance.backends import (
    CATALOGUE,
    INACTIVE_SKU,
    WAREHOUSE,
    BackendUnderTest,
)
from tests.tryton.conftest import TrytonTemplate, tryton_template
from tests.tryton.harness import TrytonRpc, TrytonServer

__all__ = [
    "TrytonProbe",
    "close_tryton_backend",
    "conformance_tryton_server",
    "tryton_backend",
    "tryton_template",
]

# Generous: SQLite Tryton on a shared 2-core machine; the breaker is never what a test checks.
TEST_POLICY = GuardPolicy(
    timeout_seconds=30.0,
    attempts=3,
    backoff_base_seconds=0.05,
    max_concurrency=4,
    calls_per_second=1000.0,
)

_SALE_STATES = {
    "draft": "draft",
    "quotation": "quotation",
    "confirmed": "confirmed",
    "processing": "confirmed",
    "done": "confirmed",
    "cancelled": "cancelled",
}


class TrytonProbe:
    """Reads Tryton's own records through a JSON-RPC session of its own."""

    def __init__(self, rpc: TrytonRpc) -> None:
        self.rpc = rpc
        (self.warehouse,) = rpc.search_read(
            "stock.location", [("code", "=", WAREHOUSE)], ["storage_location"]
        )

    def sales_orders(self, reference: str) -> list[tuple[str, str]]:
        sales = self.rpc.search_read(
            "sale.sale",
            [("reference", "=", reference)],
            ["number", "state", "invoices", "moves"],
            order=[("id", "ASC")],
        )
        result = []
        for sale in sales:
            state = _SALE_STATES[sale["state"]]
            if state == "confirmed" and not sale["invoices"] and sale["moves"]:
                moves = self.rpc.call("stock.move", "read", sale["moves"], ["state"])
                if all(move["state"] == "cancelled" for move in moves):
                    state = "cancelled"  # processed, then every move cancelled and ignored
            result.append((sale["number"] or "", state))
        return result

    def on_hand(self, sku: str, warehouse: str) -> int:
        (location,) = self.rpc.search_read(
            "stock.location", [("code", "=", warehouse)], ["storage_location"]
        )
        products = self.rpc.search_read(
            "product.product",
            [("code", "=", sku), ("active", "in", [True, False])],
            ["quantity"],
            context={"locations": [location["storage_location"]]},
        )
        total: float = sum(float(p["quantity"]) for p in products)
        return round(total)

    def _invoices(self, number: str) -> list[dict[str, Any]]:
        return self.rpc.search_read(
            "account.invoice",
            [("number", "=", number), ("type", "=", "out"), ("state", "=", "posted")],
            ["total_amount"],
        )

    def invoice_total(self, invoice_id: str) -> Decimal | None:
        totals = [i["total_amount"] for i in self._invoices(invoice_id) if i["total_amount"] >= 0]
        return totals[0] if totals else None

    def credit_note_total(self, credit_note_id: str) -> Decimal | None:
        totals = [
            -i["total_amount"] for i in self._invoices(credit_note_id) if i["total_amount"] < 0
        ]
        return totals[0] if totals else None

    def package_references(self, fulfilment_id: str) -> list[str]:
        (shipment,) = self.rpc.search_read(
            "stock.shipment.out", [("number", "=", fulfilment_id)], ["outgoing_moves"]
        )
        moves = self.rpc.call("stock.move", "read", shipment["outgoing_moves"], ["sale"])
        shipments = self.rpc.search_read(
            "stock.shipment.out",
            [("moves.sale", "=", moves[0]["sale"]), ("state", "=", "done")],
            ["reference"],
        )
        return sorted({s["reference"] for s in shipments if s["reference"]})


def check_catalogue(rpc: TrytonRpc) -> None:
    """The template holds the conformance catalogue (seed_template.py)."""
    products = rpc.search_read(
        "product.product",
        [("code", "in", [*CATALOGUE, INACTIVE_SKU]), ("active", "in", [True, False])],
        ["code", "list_price_used", "active"],
    )
    found = {p["code"]: (p["list_price_used"], bool(p["active"])) for p in products}
    expected = {sku: (price, True) for sku, price in CATALOGUE.items()}
    assert {sku: found.get(sku) for sku in CATALOGUE} == expected, found
    assert found.get(INACTIVE_SKU, (None, True))[1] is False, found


@pytest.fixture(scope="module")
def conformance_tryton_server(
    tryton_template: TrytonTemplate, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TrytonServer]:
    """One Tryton server per conformance module, on its own copy of the template."""
    workdir = tmp_path_factory.mktemp("tryton-conformance")
    with TrytonServer(tryton_template.venv, tryton_template.database, workdir) as server:
        with TrytonRpc(server.url, server.database) as rpc:
            check_catalogue(rpc.login(server.admin_login, server.admin_password))
        yield server


def tryton_adapters(
    server: TrytonServer, clock: ManualClock, policy: GuardPolicy = TEST_POLICY
) -> tuple[TrytonClient, TrytonErp, TrytonWms]:
    breaker = CircuitBreaker("tryton", clock, reset_after=timedelta(seconds=30))
    client = TrytonClient.connect(
        TrytonConnection(server.url, server.database, server.admin_login, server.admin_password),
        breaker,
        policy,
    )
    erp = TrytonErp(client)
    return client, erp, TrytonWms(client, erp, clock=clock)


@pytest.fixture
def tryton_backend(
    conformance_tryton_server: TrytonServer, clock: ManualClock
) -> Iterator[BackendUnderTest]:
    """Fresh adapters on the module's server (synchronous: the `backend` fixture asks for it
    by name inside its event loop, and closes the adapters' HTTP client there)."""
    server = conformance_tryton_server
    _client, erp, wms = tryton_adapters(server, clock)
    with TrytonRpc(server.url, server.database) as rpc:
        rpc.login(server.admin_login, server.admin_password)
        yield BackendUnderTest(name="tryton", erp=erp, wms=wms, probe=TrytonProbe(rpc))


async def close_tryton_backend(backend: BackendUnderTest) -> None:
    assert isinstance(backend.erp, TrytonErp)
    await backend.erp.client.aclose()
