"""Builders of test data: readable defaults, overridden where a test cares."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from contracts import Money, Product, ProductStatus
from gateway import Gateway
from gateway_infra.unit_of_work import UnitOfWork
from process_api.inventory.repository import report_on_hand_many
from system_api.erp.embedded import upsert_products


def product(sku: str = "MUG-RED-350", price: str = "12.90", **overrides: Any) -> Product:
    values: dict[str, Any] = {
        "sku": sku,
        "name": f"Product {sku}",
        "status": ProductStatus.ACTIVE,
        "tax_class": "standard",
        "list_price": Money(amount=Decimal(price), currency="EUR"),
    }
    values.update(overrides)
    return Product(**values)


def seed_products(gateway: Gateway, *products: Product, on_hand: int = 1000) -> None:
    """Products in the ERP's item master, with `on_hand` units each counted by the warehouse."""
    items = list(products) or [product()]

    def seed(uow: UnitOfWork) -> None:
        upsert_products(uow, items)
        report_on_hand_many(uow, {p.sku: on_hand for p in items}, uow.now)

    gateway.store.write_sync(seed)


def seed_stock(gateway: Gateway, on_hand: int = 1000, *skus: str) -> None:
    """Units the warehouse counted, for SKUs the ERP may or may not know."""
    gateway.store.write_sync(
        lambda uow: report_on_hand_many(uow, dict.fromkeys(skus, on_hand), uow.now)
    )


def order_payload(
    channel_order_id: str = "CH-1001",
    *lines: dict[str, Any],
    channel: str = "webshop",
    currency: str = "EUR",
) -> dict[str, Any]:
    return {
        "channel": channel,
        "channel_order_id": channel_order_id,
        "currency": currency,
        "lines": list(lines) or [line()],
    }


def line(
    line_id: str = "1", sku: str = "MUG-RED-350", quantity: int = 1, price: str = "12.90"
) -> dict[str, Any]:
    return {
        "line_id": line_id,
        "sku": sku,
        "quantity": quantity,
        "unit_price": {"amount": price, "currency": "EUR"},
    }
