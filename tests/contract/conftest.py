"""Fixtures of the contract tests: one seeded gateway whose composed app every document is tested
against in process, real tokens from its token endpoint, and the count of cases per operation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from schemathesis.python import asgi

from contracts import Money, Product, ProductStatus
from gateway import DEMO_PRODUCTS, Gateway, build_app
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import ManualClock
from gateway_infra.unit_of_work import UnitOfWork
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from system_api.erp.embedded import upsert_products
from system_api.wms.embedded import ensure_warehouse
from tests.conftest import INTERNAL_SCOPES, migrated_sqlite, start_gateway
from tests.contract.documents import PARTNER_DOCUMENTS, contract_settings
from tests.contract.reporting import REPORT_KEY

CHANNEL = "webshop"
WAREHOUSE = "WH"
ON_HAND = 100_000
CATALOGUE: tuple[tuple[str, str], ...] = tuple((sku, price) for sku, _, price in DEMO_PRODUCTS)
"""(SKU, list price in EUR) of every product the ERP sells."""


@dataclass(frozen=True)
class ShippedOrder:
    """An order of the webshop, shipped and invoiced: something a return can be asked for."""

    order_id: str
    lines: tuple[tuple[str, str, int], ...]
    """(line id, SKU, units shipped)"""


@dataclass
class ContractRuntime:
    """The gateway under test, its app, a client per document and the cases sent so far."""

    gateway: Gateway
    app: Any
    credentials: dict[str, tuple[str, str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    shipped: ShippedOrder | None = None

    def headers(self, document: str) -> dict[str, str]:
        """The Authorization header of the document's client: a token from the token endpoint."""
        if document not in self.tokens:
            client_id, secret = self.credentials[document]
            with asgi.get_client(self.app) as http:
                response = http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(client_id, secret),
                )
            assert response.status_code == 200, response.text
            self.tokens[document] = str(response.json()["access_token"])
        return {"Authorization": f"Bearer {self.tokens[document]}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request of the internal client (every process and system scope), for set-up."""
        with asgi.get_client(self.app) as http:
            response = http.request(method, path, headers=self.headers("process"), **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        return response.json()


CASES: dict[str, dict[str, int]] = {}
"""Cases sent so far by this process, per document and operation."""
WITHOUT_INPUTS: set[str] = set()
"""Operations that take no parameter and no body: one request is all there is to vary."""
HTTP_RUNS: dict[str, str] = {}
"""What the command-line runs over HTTP tested, per document, in this process."""


def count_case(document: str, label: str, *, has_inputs: bool = True) -> None:
    per_document = CASES.setdefault(document, {})
    per_document[label] = per_document.get(label, 0) + 1
    if not has_inputs:
        WITHOUT_INPUTS.add(label)


@pytest.fixture(autouse=True)
def _report_what_ran(request: pytest.FixtureRequest) -> Iterator[None]:
    """The cases a test sent travel in its report, so the summary adds them up also when the
    tests run in several processes (pytest-xdist)."""
    before = {document: dict(counts) for document, counts in CASES.items()}
    runs_before = dict(HTTP_RUNS)
    yield
    sent = {
        document: {
            label: count - before.get(document, {}).get(label, 0)
            for label, count in counts.items()
            if count > before.get(document, {}).get(label, 0)
        }
        for document, counts in CASES.items()
    }
    report = {
        "cases": {document: counts for document, counts in sent.items() if counts},
        "without_inputs": sorted(WITHOUT_INPUTS),
        "http": {k: v for k, v in HTTP_RUNS.items() if runs_before.get(k) != v},
    }
    request.node.user_properties.append((REPORT_KEY, json.dumps(report)))


_RUNTIMES: list[ContractRuntime] = []


def current_runtime() -> ContractRuntime:
    assert _RUNTIMES, "the contract_runtime fixture is not set up"
    return _RUNTIMES[-1]


@pytest.fixture(scope="session")
def contract_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ContractRuntime]:
    """A gateway with products, stock, channel profiles and a shipped order, so that valid
    requests can succeed; a partner client of the webshop and an internal client holding every
    process and system scope."""
    url = migrated_sqlite(tmp_path_factory.mktemp("contract") / "gateway.db")
    gateway = start_gateway(contract_settings(url), ManualClock())
    runtime = ContractRuntime(gateway=gateway, app=build_app(gateway, run_background=False))
    for document in ("system", "process", *PARTNER_DOCUMENTS):
        if document in PARTNER_DOCUMENTS:
            record, secret = gateway.clients.add(
                name=f"contract-{document}",
                kind=ClientKind.PARTNER,
                scopes=frozenset(PARTNER_SCOPES),
                channel=CHANNEL,
            )
        else:
            record, secret = gateway.clients.add(
                name=f"contract-{document}", kind=ClientKind.INTERNAL, scopes=INTERNAL_SCOPES
            )
        runtime.credentials[document] = (record.client_id, secret)
    _seed(runtime)
    _RUNTIMES.append(runtime)
    yield runtime
    _RUNTIMES.remove(runtime)
    asgi.shutdown_lifespans()


def _seed(runtime: ContractRuntime) -> None:
    gateway = runtime.gateway
    products = [
        Product(
            sku=sku,
            name=name,
            status=ProductStatus.ACTIVE,
            tax_class="standard",
            list_price=Money(amount=Decimal(price), currency="EUR"),
        )
        for sku, name, price in DEMO_PRODUCTS
    ]

    def item_master(uow: UnitOfWork) -> None:
        upsert_products(uow, products)
        ensure_warehouse(uow, WAREHOUSE, "Main warehouse")

    gateway.store.write_sync(item_master)
    gateway.channels.seed_sync(DEMO_CHANNEL_PROFILES, actor="contract-tests")
    now = gateway.clock.now().isoformat()
    for sku, _ in CATALOGUE:
        runtime.call(
            "POST",
            "/system/wms/v1/stock/adjustments",
            json={
                "sku": sku,
                "warehouse": WAREHOUSE,
                "reason": "receipt",
                "reference": f"opening-{sku}",
                "delta": ON_HAND,
            },
        )
    runtime.call(
        "POST",
        "/process/v1/inventory/counts",
        json={"as_of": now, "counts": [{"sku": sku, "on_hand": ON_HAND} for sku, _ in CATALOGUE]},
    )
    lines = tuple((str(n), sku, 500) for n, (sku, _) in enumerate(CATALOGUE[:2], start=1))
    prices = dict(CATALOGUE)
    order = runtime.call(
        "POST",
        "/process/v1/orders",
        json={
            "channel": CHANNEL,
            "channel_order_id": "contract-shipped-1",
            "currency": "EUR",
            "lines": [
                {
                    "line_id": line_id,
                    "sku": sku,
                    "quantity": units,
                    "unit_price": {"amount": prices[sku], "currency": "EUR"},
                }
                for line_id, sku, units in lines
            ],
        },
    )
    order_id = order["order_id"]
    runtime.call("POST", f"/process/v1/orders/{order_id}/release")
    runtime.call(
        "POST",
        f"/process/v1/orders/{order_id}/shipments",
        json={
            "order_id": order_id,
            "warehouse": WAREHOUSE,
            "shipped_at": now,
            "packages": [
                {
                    "package_reference": "contract-pkg-1",
                    "carrier": "dhl",
                    "tracking_number": "TRK-contract-1",
                    "lines": [
                        {"line_id": line_id, "sku": sku, "quantity": units}
                        for line_id, sku, units in lines
                    ],
                }
            ],
        },
    )
    runtime.call("POST", f"/process/v1/orders/{order_id}/invoice")
    runtime.shipped = ShippedOrder(order_id=order_id, lines=lines)
