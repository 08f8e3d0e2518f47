"""Returns tests run on the process API with real tokens, against a stocked gateway (system API
in-process and over HTTP, SQLite and PostgreSQL) whose channels cover every refund timing."""

from __future__ import annotations

import pytest

from gateway import Gateway
from tests.process.fulfilment.support import FlakyWms, stock_everything, two_products
from tests.process.returns.support import FORCING, ONRECEIPT, OUTLET, LosingErp, Outage


@pytest.fixture(autouse=True)
async def stocked(gateway: Gateway) -> None:
    """Two mugs, 100 of each in the warehouse; webshop and marketplace demo profiles plus one
    channel per refund timing."""
    await stock_everything(gateway, *two_products())
    await gateway.channels.seed([OUTLET, ONRECEIPT, FORCING], actor="test")


@pytest.fixture
def erp_outage(gateway: Gateway) -> Outage:
    """Switch off the ERP as return-to-refund reaches it (orders and invoicing are unaffected)."""
    outage = Outage("erp")
    gateway.returns.erp = LosingErp(gateway.returns.erp, outage)
    return outage


@pytest.fixture
def wms_outage(gateway: Gateway) -> Outage:
    """Switch off the WMS as return-to-refund reaches it."""
    outage = Outage("wms")
    gateway.returns.wms = FlakyWms(gateway.returns.wms, outage)
    return outage
