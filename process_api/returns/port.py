"""The returns port: what the partner edge may ask of return-to-refund, and the types it sees.

Nothing here imports the service, so the partner layer depending on this port never reaches the
system APIs the service calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from contracts.returns import Return
from process_api.returns.models import ReturnCreate

__all__ = ["Outcome", "ReturnsPort", "UnknownOrder", "UnknownReturn"]


class UnknownReturn(LookupError):
    """No return with this id."""

    def __init__(self, return_id: str) -> None:
        super().__init__(return_id)
        self.return_id = return_id


class UnknownOrder(LookupError):
    """No order with this id for the channel (another channel's order counts as unknown)."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id


@dataclass(frozen=True)
class Outcome:
    """A return after a request, whether the request created it, and whether the step asked
    for still waits for the ERP or WMS (answered 202)."""

    ret: Return
    created: bool = False
    waiting: bool = False


class ReturnsPort(Protocol):
    """Returns as the partner layer uses them (ReturnsService implements it)."""

    async def create(self, request: ReturnCreate, *, actor: str) -> Outcome:
        """Record the channel's return once and decide it by the channel's policy (authorized or
        refused with every reason); UnknownOrder for an unknown order or another channel's."""
        ...

    async def get(self, return_id: str) -> Return | None:
        """The return with its history, or None. The caller checks its partner owns it."""
        ...
