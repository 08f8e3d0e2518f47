"""Shipments confirmed by the warehouse, split into packages."""

from typing import Self

from pydantic import Field, model_validator

from contracts.common import (
    ContractModel,
    Identifier,
    LineId,
    Quantity,
    Sku,
    UtcDateTime,
    ensure_unique,
)

__all__ = ["Package", "Shipment", "ShipmentLine"]


class ShipmentLine(ContractModel):
    """Units of one order line packed into a package."""

    line_id: LineId = Field(description="The order line being shipped.")
    sku: Sku = Field(description="Shipped stock keeping unit.")
    quantity: Quantity = Field(description="Shipped units.")


class Package(ContractModel):
    """One parcel handed to a carrier."""

    package_reference: str = Field(
        min_length=1, max_length=128, description="Warehouse reference of the parcel."
    )
    carrier: str = Field(min_length=1, max_length=64, description="Carrier code, e.g. dhl.")
    tracking_number: str = Field(
        min_length=1, max_length=128, description="Carrier tracking number."
    )
    lines: list[ShipmentLine] = Field(min_length=1, description="Contents of the parcel.")


class Shipment(ContractModel):
    """A shipment of (part of) an order from one warehouse."""

    shipment_id: Identifier | None = Field(
        default=None, description="Shipment identifier, once assigned."
    )
    order_id: Identifier = Field(description="Gateway order identifier.")
    warehouse: str = Field(min_length=1, max_length=64, description="Shipping warehouse code.")
    packages: list[Package] = Field(min_length=1, description="Parcels in the shipment.")
    shipped_at: UtcDateTime = Field(description="When the goods left the warehouse (UTC).")

    @model_validator(mode="after")
    def _package_references_are_unique(self) -> Self:
        ensure_unique((p.package_reference for p in self.packages), "package_reference")
        return self
