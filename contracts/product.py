"""Product master data as published by the ERP."""

from enum import StrEnum

from pydantic import Field

from contracts.common import ContractModel, Sku
from contracts.money import Money

__all__ = ["Product", "ProductStatus"]


class ProductStatus(StrEnum):
    """Lifecycle state of a product in the catalogue."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    DISCONTINUED = "discontinued"


class Product(ContractModel):
    """A sellable product (one SKU)."""

    sku: Sku = Field(description="Stock keeping unit, unique across the catalogue.")
    name: str = Field(min_length=1, max_length=255, description="Display name of the product.")
    status: ProductStatus = Field(description="Whether the product can currently be sold.")
    tax_class: str = Field(
        min_length=1, max_length=64, description="Tax class code used by the ERP, e.g. standard."
    )
    list_price: Money = Field(description="Recommended retail price before promotions.")
