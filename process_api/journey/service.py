"""Reading one order's journey: the one place the process API and the ops console get it from."""

from __future__ import annotations

from gateway_infra.unit_of_work import Store
from process_api.journey.models import OrderJourney
from process_api.journey.repository import load_journey


class OrderJourneys:
    """One order's status changes and events (its returns' and its ERP/WMS documents' included),
    with the correlation ids of the requests that caused them, in one read transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, order_id: str) -> OrderJourney | None:
        return await self.store.read(lambda conn: load_journey(conn, order_id))
