"""SQL of journeys: which order an event concerns, and one order's history and events in order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import JsonValue
from sqlalchemy import Connection, bindparam, select

from contracts import OrderStatus
from gateway_infra.outbox import ENVELOPE_COLUMNS, event_of
from gateway_infra.tables import outbox
from process_api.journey.models import JourneyStep, OrderJourney
from process_api.tables import order_history, orders, returns

_ORDER_KEYS = ("order_id", "order_reference", "reference")
"""Keys of event data that name an order: the process layer's own events say order_id; the ERP's
and WMS's documents carry the order as their reference (an invoice's as `<order>/invoice/<n>`)."""

_ORDERS_NAMED = select(orders.c.order_id, orders.c.origin_correlation_id).where(
    orders.c.order_id.in_(bindparam("b_order_ids", expanding=True))
)
"""Built once: every event a unit of work emits looks up its order with it."""


def order_of_event(
    conn: Connection, subject: str, data: Mapping[str, JsonValue]
) -> tuple[str, str | None] | None:
    """The order an event concerns and that order's origin correlation id; None when it
    concerns no recorded order. Looked for by subject (order/<id>, return/<id>), then by the
    data's order_id, order_reference and reference, the first that names a recorded order."""
    candidates: list[str] = []
    kind, _, key = subject.partition("/")
    if kind == "order" and key:
        candidates.append(key)
    elif kind == "return" and key:
        of_return = conn.execute(
            select(returns.c.order_id).where(returns.c.return_id == key)
        ).scalar_one_or_none()
        if of_return is not None:
            candidates.append(of_return)
    for name in _ORDER_KEYS:
        value = data.get(name)
        if isinstance(value, str) and value:
            candidates.append(value.split("/", 1)[0])
    candidates = [c for c in dict.fromkeys(candidates) if len(c) <= 40]
    if not candidates:
        return None
    found = {
        row.order_id: row.origin_correlation_id
        for row in conn.execute(_ORDERS_NAMED, {"b_order_ids": candidates})
    }
    for candidate in candidates:
        if candidate in found:
            return candidate, found[candidate]
    return None


def load_journey(conn: Connection, order_id: str) -> OrderJourney | None:
    header = conn.execute(select(orders).where(orders.c.order_id == order_id)).first()
    if header is None:
        return None
    # (when, status changes before the events their transaction wrote, insertion order)
    keyed: list[tuple[Any, int, int, JourneyStep]] = []
    for h in conn.execute(
        select(order_history)
        .where(order_history.c.order_id == order_id)
        .order_by(order_history.c.id)
    ):
        keyed.append(
            (
                h.at,
                0,
                h.id,
                JourneyStep(
                    kind="status_change",
                    at=h.at,
                    correlation_id=h.correlation_id,
                    from_status=OrderStatus(h.from_status) if h.from_status else None,
                    to_status=OrderStatus(h.to_status),
                    actor=h.actor,
                    reason=h.reason,
                ),
            )
        )
    for e in conn.execute(
        select(outbox.c.id, *ENVELOPE_COLUMNS)
        .where(outbox.c.order_id == order_id)
        .order_by(outbox.c.id)
    ):
        event = event_of(e)
        keyed.append(
            (
                event.occurred_at,
                1,
                e.id,
                JourneyStep(
                    kind="event",
                    at=event.occurred_at,
                    correlation_id=event.correlation_id,
                    causation_id=event.causation_id,
                    origin_correlation_id=event.origin_correlation_id,
                    event_id=event.id,
                    type=event.type,
                    source=event.source,
                    subject=event.subject,
                    data=event.data,
                ),
            )
        )
    keyed.sort(key=lambda k: (k[0], k[1], k[2]))
    steps = [k[3] for k in keyed]
    correlation_ids: list[str] = []
    for step in steps:
        if step.correlation_id and step.correlation_id not in correlation_ids:
            correlation_ids.append(step.correlation_id)
    return OrderJourney(
        order_id=header.order_id,
        channel=header.channel,
        channel_order_id=header.channel_order_id,
        status=OrderStatus(header.status),
        origin_correlation_id=header.origin_correlation_id,
        correlation_ids=correlation_ids,
        steps=steps,
    )
