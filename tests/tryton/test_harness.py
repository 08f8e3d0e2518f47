"""Smoke tests of the Tryton harness: the seeded template, the server and the JSON-RPC client."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
import pytest

from tests.tryton.conftest import TrytonTemplate
from tests.tryton.harness import TrytonRpc, TrytonRpcError, TrytonServer, server_version

pytestmark = pytest.mark.tryton


def test_seeded_products_are_found_by_code(
    tryton_rpc: TrytonRpc, tryton_template: TrytonTemplate
) -> None:
    seeded = tryton_template.manifest["products"]
    storage = tryton_template.manifest["locations"]["storage"]

    products = tryton_rpc.search_read(
        "product.product",
        [("code", "in", sorted(seeded))],
        ["code", "name", "list_price_used", "salable", "type", "default_uom.name", "quantity"],
        order=[("code", "ASC")],
        context={"locations": [storage]},
    )

    assert [p["code"] for p in products] == sorted(seeded)
    for product in products:
        expected = seeded[product["code"]]
        assert product["name"] == expected["name"]
        assert product["list_price_used"] == Decimal(expected["list_price"])
        assert product["salable"] and product["type"] == "goods"
        assert product["default_uom."]["name"] == "Unit"
        assert product["quantity"] == expected["stock"]


def test_company_and_typed_values(tryton_rpc: TrytonRpc) -> None:
    assert tryton_rpc.context["company.rec_name"] == "Retail Sync Demo"
    (company,) = tryton_rpc.search_read("company.company", [], ["currency.code"])
    assert company["currency."]["code"] == "EUR"
    years = tryton_rpc.search_read("account.fiscalyear", [], ["start_date", "end_date"])
    today = dt.date.today()
    assert any(y["start_date"] <= today <= y["end_date"] for y in years)


def test_user_errors_come_back_typed(tryton_rpc: TrytonRpc) -> None:
    with pytest.raises(TrytonRpcError) as caught:
        tryton_rpc.call("sale.sale", "create", [{"reference": "no party"}])
    assert caught.value.kind == "UserError"
    assert '"Party"' in caught.value.message


def test_server_stops_and_starts_again_on_the_same_port(tryton_server: TrytonServer) -> None:
    port = tryton_server.port
    with TrytonRpc(tryton_server.url, tryton_server.database) as rpc:
        rpc.login(tryton_server.admin_login, tryton_server.admin_password)
        tryton_server.stop()
        assert not tryton_server.running
        with pytest.raises(httpx.TransportError):
            server_version(tryton_server.url, timeout=2)
        tryton_server.start()
        assert tryton_server.port == port
        assert server_version(tryton_server.url) == "8.2"
        # Sessions are stored in the database, so they survive a restart.
        assert rpc.call("product.product", "search", [("code", "=", "SKU-001")], 0, None, None)
