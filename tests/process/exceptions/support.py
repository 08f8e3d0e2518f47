"""Helpers of the exception tests: routing rules, raising exceptions, reading the outbox."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from contracts import OrderSubmission
from contracts.exceptions import ExceptionRecord, ExceptionStatus
from gateway import Gateway
from gateway_infra.outbox import ENVELOPE_COLUMNS, envelope_of
from gateway_infra.tables import outbox
from gateway_infra.unit_of_work import Store
from process_api.exceptions import list_exceptions, open_exception
from process_api.order_to_cash.repository import insert_order as insert_order_row
from tests.factories import line, order_payload

RULES: list[dict[str, Any]] = [
    {
        "name": "big orders",
        "workflow": "order_capture",
        "min_money_at_risk": {"amount": "1000.00", "currency": "EUR"},
        "owner_team": "key-accounts",
        "severity": "critical",
        "sla": "PT15M",
    },
    {
        "name": "orders",
        "workflow": "order_capture",
        "owner_team": "order-desk",
        "severity": "high",
        "sla": "PT1H",
    },
    {"name": "marketplace stock", "channel": "marketplace", "owner_team": "marketplace-team"},
    {"name": "reference data", "workflow": "reference_data", "owner_team": "master-data"},
]
ROUTING = json.dumps(RULES)


async def raise_exception(gateway: Gateway, **overrides: Any) -> str:
    """An exception as a workflow raises it; its id."""
    values: dict[str, Any] = {
        "workflow": "inventory_sync",
        "code": "stock_shortfall",
        "subject": "inventory/MUG-RED-350",
        "detail": "the warehouse counts less than is reserved",
        "object_ids": {"sku": "MUG-RED-350"},
    }
    values.update(overrides)
    exception_id: str = await gateway.store.write(lambda uow: open_exception(uow, **values))
    return exception_id


async def exception(gateway: Gateway, exception_id: str) -> ExceptionRecord:
    found = await gateway.exceptions.get(exception_id)
    assert found is not None
    return found


def exceptions_of(
    gateway: Gateway, *, code: str | None = None, status: ExceptionStatus | None = None
) -> list[ExceptionRecord]:
    found = gateway.database.run_read(lambda conn: list_exceptions(conn, status=status))
    return [e for e in found if code is None or e.code == code]


def events(gateway: Gateway, event_type: str) -> list[Mapping[str, Any]]:
    """Envelopes of the events of this type in the outbox, oldest first."""
    return gateway.database.run_read(
        lambda conn: [
            envelope_of(row) or {}
            for row in conn.execute(
                select(*ENVELOPE_COLUMNS).where(outbox.c.type == event_type).order_by(outbox.c.id)
            )
        ]
    )


async def insert_order(store: Store, *, total: str, channel_order_id: str = "CH-BIG-1") -> str:
    """A received order of one line worth `total` EUR, recorded without validation; its id."""
    submission = OrderSubmission.model_validate(order_payload(channel_order_id, line(price=total)))
    order_id: str = await store.write(lambda uow: insert_order_row(uow, submission, actor="test"))
    return order_id
