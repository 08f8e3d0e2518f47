"""The returns port: what the partner edge may ask of return-to-refund."""

from __future__ import annotations

from typing import Protocol

from contracts.returns import Return
from process_api.returns.models import ReturnCreate
from process_api.returns.service import Outcome

__all__ = ["ReturnsPort"]


class ReturnsPort(Protocol):
    """Returns as the partner layer uses them (ReturnsService implements it)."""

    async def create(self, request: ReturnCreate, *, actor: str) -> Outcome:
        """Record the channel's return once and decide it by the channel's policy (authorized or
        refused with every reason); UnknownOrder for an unknown order or another channel's."""
        ...

    async def get(self, return_id: str) -> Return | None:
        """The return with its history, or None. The caller checks its partner owns it."""
        ...
