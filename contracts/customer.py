"""Customers and postal addresses."""

from pydantic import Field

from contracts.common import ContractModel, CountryCode, Identifier

__all__ = ["Address", "Customer"]

# Deliberately simple: one "@", no whitespace, a dot in the domain. Full validation
# would need email-validator, which the contracts package does not depend on.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Address(ContractModel):
    """A postal address used for billing or shipping."""

    name: str = Field(min_length=1, max_length=200, description="Recipient name.")
    line1: str = Field(min_length=1, max_length=200, description="Street and house number.")
    line2: str | None = Field(
        default=None, max_length=200, description="Additional address line (apartment, c/o)."
    )
    city: str = Field(min_length=1, max_length=100, description="City or town.")
    region: str | None = Field(
        default=None, max_length=100, description="State, province or region, where used."
    )
    postal_code: str = Field(min_length=1, max_length=32, description="Postal or ZIP code.")
    country: CountryCode = Field(description="ISO 3166-1 alpha-2 country code, e.g. DE.")


class Customer(ContractModel):
    """The buying party of an order."""

    customer_id: Identifier | None = Field(
        default=None, description="Customer number in the ERP or channel, if known."
    )
    name: str = Field(min_length=1, max_length=200, description="Customer's full name.")
    email: str | None = Field(
        default=None,
        max_length=254,
        pattern=EMAIL_PATTERN,
        description="Contact e-mail address.",
    )
    phone: str | None = Field(
        default=None, min_length=1, max_length=32, description="Contact phone number."
    )
    billing_address: Address | None = Field(default=None, description="Invoice address.")
    shipping_address: Address | None = Field(default=None, description="Default delivery address.")
