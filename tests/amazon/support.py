"""Steps shared by the Amazon adapter's tests: the warehouse shipping an order, reading what the
gateway published, validating feed documents against Amazon's schema."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from defusedxml.ElementTree import fromstring as defused_fromstring
from jsonschema import Draft7Validator
from sqlalchemy import select

from contracts import Package, Shipment, ShipmentLine
from contracts.wms import AdjustmentReason, StockAdjustmentRequest
from gateway import Gateway
from process_api.tables import orders, price_publications, published_availability
from tests.amazon.conftest import CHANNEL
from tests.amazon.mock_amazon import AmazonState

WAREHOUSE = "WH"


async def stock_the_warehouse(gateway: Gateway, *skus: str, units: int = 10) -> None:
    await gateway.embedded_wms.ensure_warehouse(WAREHOUSE, "Main warehouse")
    for sku in skus:
        await gateway.embedded_wms.adjust_stock(
            StockAdjustmentRequest(
                sku=sku,
                warehouse=WAREHOUSE,
                reason=AdjustmentReason.RECEIPT,
                reference=f"opening-{sku}",
                delta=units,
            )
        )


def the_order_id(gateway: Gateway, channel_order_id: str) -> str:
    order_id: str = gateway.database.run_read(
        lambda conn: conn.execute(
            select(orders.c.order_id).where(
                orders.c.channel == CHANNEL, orders.c.channel_order_id == channel_order_id
            )
        ).scalar_one()
    )
    return order_id


async def ship(
    gateway: Gateway,
    order_id: str,
    shipment_id: str,
    at: datetime,
    *packages: tuple[str, str, list[tuple[str, str, int]]],
) -> None:
    """The warehouse ships (reference, tracking, [(line, sku, quantity)]) packages."""
    recorded = await gateway.fulfilment.record_shipment(
        order_id,
        Shipment(
            shipment_id=shipment_id,
            order_id=order_id,
            warehouse=WAREHOUSE,
            shipped_at=at,
            packages=[
                Package(
                    package_reference=reference,
                    carrier="ups",
                    tracking_number=tracking,
                    lines=[ShipmentLine(line_id=li, sku=sku, quantity=n) for li, sku, n in lines],
                )
                for reference, tracking, lines in packages
            ],
        ),
        actor="test",
    )
    assert recorded.created and not recorded.pending


def unconfirmed_availability(gateway: Gateway) -> dict[str, int]:
    rows = gateway.database.run_read(
        lambda conn: conn.execute(
            select(published_availability.c.sku, published_availability.c.quantity).where(
                published_availability.c.channel == CHANNEL,
                published_availability.c.confirmed_at.is_(None),
            )
        ).all()
    )
    return {row.sku: row.quantity for row in rows}


def price_publication_states(gateway: Gateway) -> list[tuple[str, str, str]]:
    rows = gateway.database.run_read(
        lambda conn: conn.execute(
            select(
                price_publications.c.sku, price_publications.c.change, price_publications.c.state
            )
            .where(price_publications.c.channel == CHANNEL)
            .order_by(price_publications.c.id)
        ).all()
    )
    return [(row.sku, row.change, row.state) for row in rows]


def feed_schema(models: Path) -> Draft7Validator:
    schema = json.loads((models / "schemas/feeds/listings-feed-schema-v2.json").read_text())
    return Draft7Validator(schema)


def report_schema(models: Path) -> Draft7Validator:
    path = models / "schemas/feeds/listings-feed-processing-report-schema-v2.json"
    return Draft7Validator(json.loads(path.read_text()))


def uploaded_feeds(state: AmazonState, models: Path) -> list[dict[str, Any]]:
    """Every feed document uploaded to the document store, each checked against Amazon's
    listings feed schema (v2) and its content type."""
    validator = feed_schema(models)
    documents = []
    for content_type, content in state.documents.values():
        if content_type.startswith("text/xml"):
            continue  # an order acknowledgement feed: uploaded_acknowledgements
        assert content_type == "application/json; charset=UTF-8"
        document = json.loads(content)
        errors = [e.message for e in validator.iter_errors(document)]
        assert errors == [], errors
        documents.append(document)
    return documents


def uploaded_acknowledgements(state: AmazonState) -> list[ET.Element]:
    """Every order acknowledgement feed document uploaded, parsed (Amazon publishes no schema
    of it in the vendored models: the tests check its structure)."""
    return [
        defused_fromstring(content)
        for content_type, content in state.documents.values()
        if content_type == "text/xml; charset=UTF-8"
    ]


def messages_of(document: dict[str, Any]) -> Sequence[dict[str, Any]]:
    messages: Sequence[dict[str, Any]] = document["messages"]
    return messages
