"""Stock positions from the warehouse and the availability published to channels."""

from typing import Any

from pydantic import Field

from contracts.common import ChannelCode, ContractModel, Sku, UtcDateTime

__all__ = ["ChannelAvailability", "InventoryPosition"]


def _on_hand_minus_reserved(data: dict[str, Any]) -> int:
    on_hand, reserved = data.get("on_hand"), data.get("reserved")
    if isinstance(on_hand, int) and isinstance(reserved, int):
        return on_hand - reserved
    return 0  # on_hand or reserved failed validation; that error is reported instead


class InventoryPosition(ContractModel):
    """Stock of one SKU in the warehouse at a point in time."""

    sku: Sku = Field(description="Stock keeping unit.")
    on_hand: int = Field(ge=0, description="Units physically in stock.")
    reserved: int = Field(ge=0, description="Units reserved for open orders.")
    available: int = Field(
        default_factory=_on_hand_minus_reserved,
        description=(
            "Units free to sell. Defaults to on_hand - reserved; a source may report less "
            "(e.g. quality holds). Negative when oversold."
        ),
    )
    as_of: UtcDateTime = Field(description="When the position was measured (UTC).")


class ChannelAvailability(ContractModel):
    """Quantity of one SKU offered to one sales channel."""

    sku: Sku = Field(description="Stock keeping unit.")
    channel: ChannelCode = Field(description="Channel the availability is published to.")
    available: int = Field(ge=0, description="Units the channel may sell.")
    as_of: UtcDateTime = Field(description="When the availability was computed (UTC).")
    published_quantity: int | None = Field(
        default=None,
        ge=0,
        description="The last value sent to the channel for this SKU; None if none was sent.",
    )
    published_at: UtcDateTime | None = Field(
        default=None, description="When that value was sent (UTC); None if none was sent."
    )
