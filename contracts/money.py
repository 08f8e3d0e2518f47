"""Money: an exact decimal amount in an ISO 4217 currency; floats are never accepted."""

from decimal import Decimal
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from contracts.common import ContractModel, CurrencyCode

__all__ = ["MAX_AMOUNT", "MAX_DECIMAL_PLACES", "Money", "minor_unit_exponent"]

MAX_DECIMAL_PLACES = 4
MAX_AMOUNT = Decimal(10) ** 13
"""Amounts stay below ten trillion: every stored amount fits a NUMERIC(18, 4) column."""

_MINOR_UNIT_EXPONENTS: dict[str, int] = {
    # no minor unit
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
            "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    # three-digit minor unit
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    # four-digit minor unit
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
_DEFAULT_EXPONENT = 2


def minor_unit_exponent(currency: str) -> int:
    """Number of digits after the decimal point of the currency's minor unit (ISO 4217)."""
    return _MINOR_UNIT_EXPONENTS.get(currency, _DEFAULT_EXPONENT)


def _strict_decimal(value: Any) -> Any:
    """Accept a decimal string or a Decimal; reject floats and numbers before pydantic coerces
    them, so the wire format is the documented string and nothing is rounded on the way in."""
    if isinstance(value, float):
        raise ValueError(
            "amount must not be a float (floats cannot represent money exactly); "
            'send a decimal string such as "19.99"'
        )
    if not isinstance(value, str | Decimal):
        raise ValueError(
            f'amount must be a decimal string such as "19.99", not {type(value).__name__}'
        )
    return value


def _check_amount(value: Decimal) -> Decimal:
    """Reject NaN/infinity and more than MAX_DECIMAL_PLACES significant decimal places."""
    if not value.is_finite():
        raise ValueError("amount must be a finite number")
    if abs(value) >= MAX_AMOUNT:
        raise ValueError(f"amount must be below {MAX_AMOUNT:,} in absolute value")
    _sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # unreachable for finite values; narrows the type
        raise ValueError("amount must be a finite number")
    trailing_zeros = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if any(digits) and exponent + trailing_zeros < -MAX_DECIMAL_PLACES:
        raise ValueError(f"amount must have at most {MAX_DECIMAL_PLACES} decimal places")
    if exponent > 0:  # "1E+3" -> "1000", so JSON always carries plain digits
        return Decimal(int(value))
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_strict_decimal),
    AfterValidator(_check_amount),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": r"^-?\d{1,13}(\.\d{1,4})?$", "examples": ["19.99"]}
    ),
]


class Money(ContractModel):
    """An exact amount of money in one currency."""

    amount: Amount = Field(
        description="Exact decimal amount as a string, at most 4 decimal places; never a float."
    )
    currency: CurrencyCode = Field(description="ISO 4217 currency code, e.g. EUR.")

    @model_validator(mode="after")
    def _canonical_scale(self) -> Self:
        """Write amounts with the currency's minor-unit places, or more where they matter.

        12.9 EUR and 12.9000 EUR (as a NUMERIC(18,4) column returns it) both read 12.90 EUR.
        """
        significant = self.amount.normalize()
        exponent = significant.as_tuple().exponent
        places = max(
            minor_unit_exponent(self.currency), -exponent if isinstance(exponent, int) else 0
        )
        canonical = self.amount.quantize(Decimal(1).scaleb(-places))
        if canonical.as_tuple() != self.amount.as_tuple():
            object.__setattr__(self, "amount", canonical)
        return self

    @classmethod
    def zero(cls, currency: str) -> Self:
        """Zero in the given currency."""
        return cls(amount=Decimal(0), currency=currency)

    @classmethod
    def from_minor_units(cls, units: int, currency: str) -> Self:
        """Build from an integer count of minor units (cents, fils...), e.g. 1999 -> 19.99."""
        if isinstance(units, bool) or not isinstance(units, int):
            raise TypeError("units must be an int")
        exponent = minor_unit_exponent(currency)
        return cls(amount=Decimal(units).scaleb(-exponent), currency=currency)

    def to_minor_units(self) -> int:
        """Integer count of minor units; raises ValueError if the amount has finer precision."""
        scaled = self.amount.scaleb(minor_unit_exponent(self.currency))
        if scaled != scaled.to_integral_value():
            raise ValueError(
                f"{self.amount} {self.currency} has more decimal places than the currency's "
                f"minor unit ({minor_unit_exponent(self.currency)})"
            )
        return int(scaled)

    def _same_currency(self, other: "Money", operation: str) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot {operation} Money and {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(
                f"cannot {operation} amounts in different currencies: "
                f"{self.currency} and {other.currency}"
            )

    def __add__(self, other: "Money") -> "Money":
        self._same_currency(other, "add")
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: "Money") -> "Money":
        self._same_currency(other, "subtract")
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def times(self, qty: int) -> "Money":
        """This amount multiplied by a whole quantity (e.g. unit price x line quantity)."""
        if isinstance(qty, bool) or not isinstance(qty, int):
            raise TypeError("qty must be an int")
        return Money(amount=self.amount * qty, currency=self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
