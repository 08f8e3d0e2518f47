"""Fulfilment tests run on the process API with real tokens, against a stocked gateway (system
API in-process and over HTTP, SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from gateway import Gateway
from tests.process.fulfilment.support import (
    FlakyErp,
    FlakyWms,
    Outage,
    stock_everything,
    two_products,
)


@pytest.fixture(autouse=True)
async def stocked(gateway: Gateway) -> None:
    """Two mugs in the item master, 100 of each counted by the gateway and held by the WMS."""
    await stock_everything(gateway, *two_products())


@pytest.fixture
def wms_outage(gateway: Gateway) -> Outage:
    """Switch off the WMS as the fulfilment service reaches it."""
    outage = Outage("wms")
    gateway.fulfilment.wms = FlakyWms(gateway.fulfilment.wms, outage)
    return outage


@pytest.fixture
def erp_outage(gateway: Gateway) -> Outage:
    """Switch off the ERP as the fulfilment service reaches it (order intake is unaffected)."""
    outage = Outage("erp")
    gateway.fulfilment.erp = FlakyErp(gateway.fulfilment.erp, outage)
    return outage
