"""The conformance suite's backend fixture: embedded always, Tryton when its group runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contracts import Money, Product, ProductStatus
from gateway import Gateway
from gateway_infra.clock import ManualClock
from system_api.erp.embedded import upsert_products
from tests.conftest import make_settings, provisioned_database, start_gateway
from tests.system.conformance.backends import (
    CATALOGUE,
    INACTIVE_SKU,
    WAREHOUSE,
    BackendUnderTest,
    EmbeddedProbe,
)
from tests.system.conformance.tryton_backend import (  # noqa: F401 - fixtures
    close_tryton_backend,
    conformance_tryton_server,
    tryton_backend,
    tryton_template,
)


def seed_embedded(gateway: Gateway) -> None:
    products = [
        Product(
            sku=sku,
            name=f"Product {sku}",
            status=ProductStatus.ACTIVE,
            tax_class="standard",
            list_price=Money(amount=price, currency="EUR"),
        )
        for sku, price in CATALOGUE.items()
    ]
    products.append(
        Product(
            sku=INACTIVE_SKU,
            name="Discontinued vase",
            status=ProductStatus.INACTIVE,
            tax_class="standard",
            list_price=Money(amount="30.00", currency="EUR"),
        )
    )

    def seed(uow: object) -> None:
        upsert_products(uow, products)  # type: ignore[arg-type]
        gateway.embedded_wms.ensure_warehouse_sync(uow, WAREHOUSE, "Main warehouse")  # type: ignore[arg-type]

    gateway.store.write_sync(seed)


@pytest.fixture(
    params=[
        "embedded-sqlite",
        pytest.param("embedded-postgres", marks=pytest.mark.postgres),
        pytest.param("tryton", marks=pytest.mark.tryton),
    ]
)
async def backend(
    request: pytest.FixtureRequest, tmp_path: Path, clock: ManualClock
) -> AsyncIterator[BackendUnderTest]:
    """One backend adapter with the conformance catalogue; the tests do not know which."""
    if request.param == "tryton":
        tryton: BackendUnderTest = request.getfixturevalue("tryton_backend")
        yield tryton
        await close_tryton_backend(tryton)  # its HTTP client belongs to this event loop
        return
    kind = request.param.removeprefix("embedded-")
    with provisioned_database(kind, tmp_path) as url:
        gateway = start_gateway(make_settings(url), clock)
        seed_embedded(gateway)
        yield BackendUnderTest(
            name=request.param,
            erp=gateway.embedded_erp,
            wms=gateway.embedded_wms,
            probe=EmbeddedProbe(gateway.database),
        )
        await gateway.aclose()
