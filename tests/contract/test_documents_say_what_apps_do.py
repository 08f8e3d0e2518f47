"""What the contract runs found, as specifications of the documents and the validation behind
them: JSON values only in their documented type, rules on text and decimals stated in the
schema, header schemas that match what the apps accept, and links that lead somewhere."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError, create_model

from contracts.channel import AvailabilityPolicy, ChannelProfile, PriceRules
from contracts.common import TEXT_PATTERN, UtcDateTime
from contracts.customer import Customer
from partner_api.edge import IDEMPOTENCY_KEY_SCHEMA
from partner_api.idempotency import parse_idempotency_key
from partner_api.v2.schemas import MinorMoney
from process_api.channels.routes import expected_version
from tests.contract.documents import served_documents

pytestmark = pytest.mark.contract


@pytest.mark.parametrize("amount", [False, True, "5", "1290"])
def test_an_integer_field_refuses_booleans_and_strings(amount: object) -> None:
    with pytest.raises(ValidationError, match="must be integer"):
        MinorMoney.model_validate({"amount_minor": amount, "currency": "EUR"})


@pytest.mark.parametrize("amount", [1290, 1290.0])
def test_an_integer_field_takes_whole_numbers(amount: object) -> None:
    money = MinorMoney.model_validate({"amount_minor": amount, "currency": "EUR"})

    assert money.amount_minor == 1290


def test_a_duration_is_an_iso_8601_string_not_a_number_of_seconds() -> None:
    with pytest.raises(ValidationError, match="must be string"):
        ChannelProfile.model_validate(
            {"channel": "shop", "name": "Shop", "currency": "EUR", "acknowledgement_deadline": 60}
        )


@pytest.mark.parametrize("value", ["0.5", "1700000000", " 12 "])
def test_a_number_written_as_a_string_is_not_read_as_a_date_time(value: str) -> None:
    model = create_model("At", at=(UtcDateTime, ...))
    with pytest.raises(ValidationError, match="RFC 3339"):
        model.model_validate({"at": value})


def test_free_text_states_in_its_schema_that_control_characters_are_refused() -> None:
    name = Customer.model_json_schema()["properties"]["name"]
    branches = name.get("anyOf", [name])

    assert {"type": "string", "pattern": TEXT_PATTERN}.items() <= branches[0].items()
    with pytest.raises(ValidationError, match="control characters"):
        Customer.model_validate({"name": "Ada\x07"})
    assert not re.match(TEXT_PATTERN, "Ada\x07")
    assert re.match(TEXT_PATTERN, "Ada\tLovelace\n")


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("80", True),
        ("12.5", True),
        ("0.5", True),
        ("100", True),
        ("0", False),
        ("100.5", False),
        ("", False),
        ("1e2", False),
        (80, True),
        (0, False),
    ],
)
def test_a_percentage_string_is_valid_exactly_when_its_documented_pattern_says_so(
    value: object, accepted: bool
) -> None:
    schema = AvailabilityPolicy.model_json_schema()["properties"]["percentage"]
    pattern = next(b["pattern"] for b in schema["anyOf"] if b.get("type") == "string")
    try:
        AvailabilityPolicy.model_validate({"percentage": value})
        taken = True
    except ValidationError:
        taken = False

    assert taken is accepted
    if isinstance(value, str):
        assert bool(re.fullmatch(pattern, value)) is accepted


def test_decimals_still_read_from_numbers_and_write_as_strings() -> None:
    rules = PriceRules.model_validate({"minimum_margin_percent": 12.5})

    assert rules.minimum_margin_percent == Decimal("12.5")
    assert rules.model_dump(mode="json")["minimum_margin_percent"] == "12.5"


def test_the_idempotency_key_pattern_is_exactly_what_the_edge_accepts() -> None:
    pattern = re.compile(str(IDEMPOTENCY_KEY_SCHEMA["pattern"]))
    for code in range(0x20, 0x7F):
        for key in (f"a{chr(code)}b", f'"a{chr(code)}b"'):
            try:
                parse_idempotency_key(key)
                accepted = True
            except Exception:  # noqa: BLE001 - any refusal is a refusal
                accepted = False
            assert bool(pattern.match(key)) is accepted, key


def test_an_empty_if_match_sets_no_condition() -> None:
    assert expected_version("") is None
    assert expected_version('"v3"') == 3


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"#/paths/{path.replace('~', '~0').replace('/', '~1')}/{method}": operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def test_header_parameters_are_never_null() -> None:
    for name, document in served_documents().items():
        for operation in _operations(document).values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "header":
                    assert "anyOf" not in parameter["schema"], (name, parameter["name"])


@pytest.mark.parametrize(
    ("document", "source", "status", "links"),
    [
        ("partner_v2", "#/paths/~1orders/post", "201", {"GetOrder", "CancelOrder"}),
        ("partner_v2", "#/paths/~1orders~1{order_id}/get", "200", {"CancelOrder"}),
        ("partner_v2", "#/paths/~1returns/post", "201", {"GetReturn"}),
        ("process", "#/paths/~1v1~1orders/post", "201", {"GetOrder", "CancelOrder"}),
        ("process", "#/paths/~1v1~1returns/post", "201", {"GetReturn"}),
    ],
)
def test_created_orders_and_returns_link_to_reading_and_cancelling_them(
    document: str, source: str, status: str, links: set[str]
) -> None:
    operations = _operations(served_documents()[document])
    declared = operations[source]["responses"][status]["links"]

    assert set(declared) == links
    for link in declared.values():
        target = operations[link["operationRef"]]
        path_parameters = {p["name"] for p in target["parameters"] if p["in"] == "path"}
        assert set(link["parameters"]) == path_parameters
