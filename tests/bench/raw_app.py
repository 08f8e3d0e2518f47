"""The benchmark's baseline: a raw FastAPI app of the gateway's partner shape, without the gateway.

The same paths, the same pydantic request and response models (so the same validation and
serialisation work), served by the same uvicorn; no authentication, no throttling, no idempotency,
no storage. `make bench` serves it with `uvicorn tests.bench.raw_app:app` next to the gateway.

`durable_app()` is the same app whose order POST also writes the order in one transaction (through
the gateway's `Database`: a worker-thread hop, BEGIN IMMEDIATE on SQLite, commit) before it
answers: the floor under any intake that keeps what it answers. `make bench` reports it beside
raw for intake.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import FastAPI, Query, Response
from sqlalchemy import Column, MetaData, String, Table, Text, insert

from contracts.order import OrderStatus
from gateway_infra.database import Database
from partner_api.v2.schemas import (
    LineQuantities,
    LineStatus,
    MinorMoney,
    V2Availability,
    V2AvailabilityList,
    V2Order,
    V2OrderIn,
    V2OrderLine,
)

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.get("/partner/v2/inventory", response_model=V2AvailabilityList)
async def availability(sku: Annotated[list[str], Query(min_length=1)]) -> V2AvailabilityList:
    now = datetime.now(UTC)
    return V2AvailabilityList(
        items=[
            V2Availability(
                sku=s, available_quantity=42, as_of=now, published_quantity=40, published_at=now
            )
            for s in sku
        ]
    )


@app.post("/partner/v2/orders", response_model=V2Order, status_code=201)
async def submit(body: V2OrderIn, response: Response) -> V2Order:
    now = datetime.now(UTC)
    order_id = f"ord_{uuid.uuid4().hex}"
    response.headers["Location"] = f"/partner/v2/orders/{order_id}"
    return V2Order(
        order_id=order_id,
        channel_order_id=body.channel_order_id,
        status=OrderStatus.ACCEPTED,
        currency=body.currency,
        lines=[
            V2OrderLine(
                line_id=line.line_id,
                sku=line.sku,
                ordered_quantity=line.quantity,
                unit_price=line.unit_price,
                status=LineStatus.ACKNOWLEDGED,
                quantities=LineQuantities(
                    created=0, acknowledged=line.quantity, rejected=0, cancelled=0, shipped=0
                ),
            )
            for line in body.lines
        ],
        total=MinorMoney(
            amount_minor=sum(line.unit_price.amount_minor * line.quantity for line in body.lines),
            currency=body.currency,
        ),
        created_at=now,
        updated_at=now,
    )


FLOOR_DATABASE_URL = "BENCH_FLOOR_DATABASE_URL"
_floor_metadata = MetaData()
_floor_orders = Table(
    "bench_floor_orders",
    _floor_metadata,
    Column("order_id", String(40), primary_key=True),
    Column("channel_order_id", String(64), nullable=False, unique=True),
    Column("body", Text, nullable=False),
)
_INSERT_FLOOR_ORDER = insert(_floor_orders)


def durable_app() -> FastAPI:
    """The raw app with one durable write per order, on the database $BENCH_FLOOR_DATABASE_URL
    names (its table `bench_floor_orders` is created there)."""
    database = Database(os.environ[FLOOR_DATABASE_URL])
    _floor_metadata.create_all(database.engine)
    durable = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    durable.add_api_route(
        "/partner/v2/inventory", availability, methods=["GET"], response_model=V2AvailabilityList
    )

    @durable.post("/partner/v2/orders", response_model=V2Order, status_code=201)
    async def submit_durably(body: V2OrderIn, response: Response) -> V2Order:
        answer = await submit(body, response)
        row = {
            "order_id": answer.order_id,
            "channel_order_id": body.channel_order_id,
            "body": body.model_dump_json(),
        }
        await database.write(lambda conn: conn.execute(_INSERT_FLOOR_ORDER, row))
        return answer

    return durable
