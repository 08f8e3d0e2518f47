"""The shipments port: what the partner edge may read of an order's shipments."""

from __future__ import annotations

from typing import Protocol

from contracts import Shipment

__all__ = ["ShipmentsPort"]


class ShipmentsPort(Protocol):
    """Shipments as the partner layer reads them (FulfilmentService implements it)."""

    async def list_shipments(self, order_id: str) -> list[Shipment]:
        """The order's shipments confirmed by the warehouse, oldest first, each with its
        packages (carrier, tracking number, units per line); none for an unknown order. The
        caller checks that its partner owns the order."""
        ...
