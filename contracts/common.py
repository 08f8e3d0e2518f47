"""Shared constrained types and the base model that every contract builds on."""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

__all__ = [
    "MAX_LINE_QUANTITY",
    "TEXT_PATTERN",
    "ChannelCode",
    "ContractModel",
    "CountryCode",
    "CurrencyCode",
    "DecimalForm",
    "Identifier",
    "JsonTypedModel",
    "LineId",
    "Quantity",
    "Sku",
    "UtcDateTime",
    "ensure_unique",
    "ensure_utc",
]

MAX_LINE_QUANTITY = 1_000_000


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
TEXT_PATTERN = "^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]*$"
"""How the documents state the rule on text: no control characters (tab and line breaks aside)."""


def _document_text_rule(schema: dict[str, Any], _model: type) -> None:
    """Free text fields (string, no pattern, format or enum of their own) carry TEXT_PATTERN, so
    the published schema says what the model refuses."""
    for field in schema.get("properties", {}).values():
        for branch in (field, *field.get("anyOf", ())):
            if branch.get("type") == "string" and not branch.keys() & {
                "pattern",
                "format",
                "enum",
                "const",
            }:
                branch["pattern"] = TEXT_PATTERN


_JSON_TYPE_OF = {bool: "boolean", int: "integer", float: "number", str: "string"}
_FIELD_JSON_TYPES: dict[type, dict[str, frozenset[str] | None]] = {}


def _json_types(schema: dict[str, Any], defs: dict[str, Any]) -> frozenset[str] | None:
    """The JSON types a property schema admits; None when it does not restrict them."""
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return _json_types(defs.get(ref.removeprefix("#/$defs/"), {}), defs)
    kind = schema.get("type")
    if isinstance(kind, str):
        return frozenset({kind})
    if isinstance(kind, list):
        return frozenset(kind)
    branches = schema.get("anyOf") or schema.get("oneOf")
    if branches:
        found: set[str] = set()
        for branch in branches:
            types = _json_types(branch, defs)
            if types is None:
                return None
            found |= types
        return frozenset(found)
    return None


def _field_json_types(model: type[BaseModel]) -> dict[str, frozenset[str] | None]:
    known = _FIELD_JSON_TYPES.get(model)
    if known is None:
        schema = model.model_json_schema(mode="validation")
        properties = schema.get("properties", {})
        defs = schema.get("$defs", {})
        known = {}
        for name, field in model.model_fields.items():
            alias = field.validation_alias if isinstance(field.validation_alias, str) else None
            prop = properties.get(alias or field.alias or name)
            known[name] = None if prop is None else _json_types(prop, defs)
        _FIELD_JSON_TYPES[model] = known
    return known


class JsonTypedModel(BaseModel):
    """A model that takes each JSON value only in the type its schema documents: no `true` for a
    number, no "5" for an integer, no number for a text or a duration (pydantic would convert
    them). Values built in code (Decimal, datetime, enum members) pass as they are."""

    @field_validator("*", mode="wrap")
    @classmethod
    def _documented_json_type(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # The field's own validation speaks first (its messages are the more precise); a value it
        # would take is refused here when its JSON type is not the documented one.
        validated = handler(value)
        kind = _JSON_TYPE_OF.get(type(value))
        if kind is None or info.field_name is None:
            return validated
        types = _field_json_types(cls).get(info.field_name)
        if types is None or kind in types:
            return validated
        if kind == "integer" and "number" in types:
            return validated
        if kind == "number" and "integer" in types and float(value).is_integer():
            return validated
        raise ValueError(f"must be {' or '.join(sorted(types))}, not {kind}")


class ContractModel(JsonTypedModel):
    """Base of every contract: immutable, strict about unknown fields, typed as documented
    (JsonTypedModel), and free of control characters in text (tab and line breaks aside), which
    no system of record should receive."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra=_document_text_rule)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if isinstance(value, str) and _CONTROL_CHARACTERS.search(value):
            raise ValueError("text must not contain control characters")
        return value


def ensure_utc(value: datetime) -> datetime:
    """Reject naive datetimes and convert aware ones to UTC."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ValueError("datetime must be timezone-aware (e.g. 2024-05-01T12:00:00Z)")
    return value.astimezone(UTC)


_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")


def _not_a_number(value: Any) -> Any:
    """Times travel as RFC 3339 strings; a bare number, also one written as a string (as in a
    query parameter), is refused, not read as epoch seconds."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.match(value)):
        raise ValueError("a date-time must be an RFC 3339 string, e.g. 2024-05-01T12:00:00Z")
    return value


UtcDateTime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(ensure_utc)]
"""A timezone-aware datetime, normalised to UTC; naive values are rejected."""

Sku = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$"),
]
"""Stock keeping unit: 1..64 chars, letters, digits, dot, underscore, hyphen."""

Quantity = Annotated[int, Field(gt=0, le=MAX_LINE_QUANTITY)]
"""A line quantity: a positive whole number of units, at most one million."""

LineId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
"""Identifier of a line within its document (order, shipment, return...)."""

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
"""An opaque identifier issued by this gateway or by a partner system."""

ChannelCode = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")
]
"""Sales channel code, lower case, e.g. ``webshop`` or ``amazon_de``."""

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 alphabetic currency code, e.g. ``EUR``."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""ISO 3166-1 alpha-2 country code, e.g. ``DE``."""


@dataclass(frozen=True)
class DecimalForm:
    """Annotated[Decimal, DecimalForm(...)]: a decimal taken as a JSON number within the bounds,
    or as a string in the form of `pattern`, which states the same bounds; the schema promises
    for both exactly what is accepted."""

    pattern: str
    gt: int | None = None
    ge: int | None = None
    le: int | None = None

    def _text_in_form(self, value: Any) -> Any:
        if isinstance(value, str) and not re.fullmatch(self.pattern, value):
            raise ValueError(f"must be a decimal number matching {self.pattern}")
        return value

    def __get_pydantic_core_schema__(
        self, _source: Any, _handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        def bound(value: int | None) -> Decimal | None:
            return None if value is None else Decimal(value)

        return core_schema.no_info_before_validator_function(
            self._text_in_form,
            core_schema.decimal_schema(gt=bound(self.gt), ge=bound(self.ge), le=bound(self.le)),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        if handler.mode == "serialization":
            return handler(schema)
        number: dict[str, Any] = {"type": "number"}
        if self.gt is not None:
            number["exclusiveMinimum"] = self.gt
        if self.ge is not None:
            number["minimum"] = self.ge
        if self.le is not None:
            number["maximum"] = self.le
        return {"anyOf": [number, {"type": "string", "pattern": self.pattern}]}


def ensure_unique(values: Iterable[str], what: str) -> None:
    """Raise ValueError naming the duplicates if any value occurs more than once."""
    seen: set[str] = set()
    duplicates: list[str] = []
    for value in values:
        if value in seen and value not in duplicates:
            duplicates.append(value)
        seen.add(value)
    if duplicates:
        raise ValueError(f"duplicate {what}: {', '.join(duplicates)}")
