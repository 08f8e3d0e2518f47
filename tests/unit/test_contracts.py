"""Behaviour of the canonical contracts shared by all API layers."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import (
    Customer,
    Disposition,
    EventEnvelope,
    InspectionGrade,
    InspectionResult,
    InventoryPosition,
    Money,
    Order,
    OrderLine,
    OrderStatus,
    OrderSubmission,
    Price,
    Problem,
    Promotion,
    SettlementLine,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def eur(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="EUR")


def line(line_id: str, price: Money, quantity: int = 1, sku: str = "SKU-1") -> OrderLine:
    return OrderLine(line_id=line_id, sku=sku, quantity=quantity, unit_price=price)


def submission(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": "webshop",
        "channel_order_id": "WS-1001",
        "currency": "EUR",
        "lines": [
            {
                "line_id": "1",
                "sku": "SKU-1",
                "quantity": 2,
                "unit_price": {"amount": "9.99", "currency": "EUR"},
            },
            {
                "line_id": "2",
                "sku": "SKU-2",
                "quantity": 1,
                "unit_price": {"amount": "5.00", "currency": "EUR"},
            },
        ],
    }
    data.update(overrides)
    return data


# --- Money -------------------------------------------------------------------------------


def test_money_rejects_float_amounts() -> None:
    with pytest.raises(ValidationError, match="must not be a float"):
        Money.model_validate({"amount": 19.99, "currency": "EUR"})


def test_money_rejects_float_amounts_in_json() -> None:
    with pytest.raises(ValidationError, match="must not be a float"):
        Money.model_validate_json('{"amount": 19.99, "currency": "EUR"}')


@pytest.mark.parametrize("amount", ["19.99", "19", Decimal("19.99")])
def test_money_accepts_decimal_strings_and_decimals(amount: object) -> None:
    money = Money.model_validate({"amount": amount, "currency": "EUR"})
    assert isinstance(money.amount, Decimal)


def test_money_refuses_json_numbers_even_whole_ones() -> None:
    with pytest.raises(ValidationError, match="decimal string"):
        Money.model_validate_json('{"amount": 19, "currency": "EUR"}')


@pytest.mark.parametrize("amount", ["9" * 40, "10000000000000", "-1e20"])
def test_money_refuses_amounts_no_ledger_column_can_hold(amount: str) -> None:
    with pytest.raises(ValidationError, match="below"):
        Money.model_validate({"amount": amount, "currency": "EUR"})


def test_an_order_whose_total_is_too_large_is_refused() -> None:
    huge = {"amount": "9999999999.00", "currency": "EUR"}
    payload = submission()
    payload["lines"][0]["unit_price"] = huge
    payload["lines"][0]["quantity"] = 1_000_000
    with pytest.raises(ValidationError, match="order total"):
        OrderSubmission.model_validate(payload)


def test_identifiers_and_text_with_control_characters_are_refused() -> None:
    with pytest.raises(ValidationError, match="pattern"):
        OrderSubmission.model_validate(submission(channel_order_id="A\x00B"))
    with pytest.raises(ValidationError, match="control characters"):
        Customer.model_validate({"name": "Ada\x00"})


def test_a_number_is_not_read_as_a_date_time() -> None:
    with pytest.raises(ValidationError, match="RFC 3339"):
        OrderSubmission.model_validate(submission(placed_at=0))


def test_money_rejects_more_than_four_decimal_places() -> None:
    with pytest.raises(ValidationError, match="at most 4 decimal places"):
        Money.model_validate({"amount": "1.00001", "currency": "EUR"})


def test_money_rejects_non_finite_amounts() -> None:
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": "NaN", "currency": "EUR"})


@pytest.mark.parametrize("currency", ["eur", "EURO", "EU", "E1R", ""])
def test_money_currency_must_be_three_uppercase_letters(currency: str) -> None:
    with pytest.raises(ValidationError):
        Money.model_validate({"amount": "1", "currency": currency})


@pytest.mark.parametrize(
    ("units", "currency", "amount"),
    [
        (1999, "EUR", "19.99"),
        (1500, "JPY", "1500"),
        (12345, "KWD", "12.345"),
        (-250, "USD", "-2.50"),
    ],
)
def test_money_minor_units_round_trip(units: int, currency: str, amount: str) -> None:
    money = Money.from_minor_units(units, currency)
    assert money.amount == Decimal(amount)
    assert money.to_minor_units() == units


def test_money_to_minor_units_uses_the_currency_exponent() -> None:
    assert Money(amount=Decimal("1500"), currency="JPY").to_minor_units() == 1500
    assert Money(amount=Decimal("1.234"), currency="KWD").to_minor_units() == 1234
    assert Money(amount=Decimal("1.5"), currency="EUR").to_minor_units() == 150


def test_money_to_minor_units_refuses_precision_finer_than_the_minor_unit() -> None:
    with pytest.raises(ValueError, match="minor unit"):
        Money(amount=Decimal("10.5"), currency="JPY").to_minor_units()


def test_money_adds_and_subtracts_same_currency() -> None:
    assert eur("1.10") + eur("2.20") == eur("3.30")
    assert eur("5.00") - eur("7.50") == eur("-2.50")
    assert eur("0.10").times(3) == eur("0.30")
    assert Money.zero("EUR") + eur("1.00") == eur("1.00")


def test_money_refuses_to_add_different_currencies() -> None:
    with pytest.raises(ValueError, match="different currencies"):
        _ = eur("1.00") + Money(amount=Decimal("1.00"), currency="USD")


def test_money_serialises_amount_as_json_string() -> None:
    assert eur("19.90").model_dump(mode="json") == {"amount": "19.90", "currency": "EUR"}


def test_money_is_immutable() -> None:
    money = eur("1.00")
    with pytest.raises(ValidationError):
        money.amount = Decimal("2.00")  # type: ignore[misc]


# --- Times -------------------------------------------------------------------------------


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        OrderSubmission.model_validate(submission(placed_at=datetime(2024, 5, 1, 12, 0)))


def test_naive_datetime_strings_are_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        OrderSubmission.model_validate(submission(placed_at="2024-05-01T12:00:00"))


def test_aware_non_utc_datetimes_are_converted_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    order = OrderSubmission.model_validate(
        submission(placed_at=datetime(2024, 5, 1, 14, 0, tzinfo=cest))
    )
    assert order.placed_at == T0
    assert order.placed_at is not None and order.placed_at.utcoffset() == timedelta(0)


# --- Orders ------------------------------------------------------------------------------


def test_order_submission_accepts_a_valid_order() -> None:
    order = OrderSubmission.model_validate(submission())
    assert [line.line_id for line in order.lines] == ["1", "2"]


def test_order_submission_rejects_duplicate_line_ids() -> None:
    data = submission()
    data["lines"][1]["line_id"] = "1"
    with pytest.raises(ValidationError, match="duplicate line_id: 1"):
        OrderSubmission.model_validate(data)


def test_order_submission_rejects_prices_in_another_currency() -> None:
    data = submission()
    data["lines"][1]["unit_price"]["currency"] = "USD"
    with pytest.raises(ValidationError, match="order currency EUR"):
        OrderSubmission.model_validate(data)


def test_order_submission_requires_at_least_one_line() -> None:
    with pytest.raises(ValidationError):
        OrderSubmission.model_validate(submission(lines=[]))


def test_order_submission_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        OrderSubmission.model_validate(submission(gift_wrap=True))


@pytest.mark.parametrize("quantity", [0, -1, 1_000_001])
def test_order_line_quantity_must_be_positive_and_bounded(quantity: int) -> None:
    with pytest.raises(ValidationError):
        line("1", eur("1.00"), quantity=quantity)


@pytest.mark.parametrize("sku", ["", "-leading-dash", "has space", "x" * 65])
def test_sku_format_is_enforced(sku: str) -> None:
    with pytest.raises(ValidationError):
        line("1", eur("1.00"), sku=sku)


def test_order_total_sums_unit_price_times_quantity() -> None:
    lines = [line("1", eur("9.99"), quantity=3), line("2", eur("0.03"))]
    assert Order.order_total(lines, "EUR") == eur("30.00")


def make_order() -> Order:
    lines = [line("1", eur("9.99"), quantity=3), line("2", eur("0.0001"), sku="SKU-2")]
    return Order(
        order_id="ord_123",
        channel="webshop",
        channel_order_id="WS-1001",
        status=OrderStatus.ACCEPTED,
        currency="EUR",
        lines=lines,
        total=Order.order_total(lines, "EUR"),
        created_at=T0,
        updated_at=T0 + timedelta(minutes=5),
    )


def test_order_json_round_trip_keeps_decimals_exact() -> None:
    order = make_order()
    payload = order.model_dump_json()
    assert '"amount":"29.9701"' in payload
    restored = Order.model_validate_json(payload)
    assert restored == order
    assert restored.total.amount == Decimal("29.9701")
    assert restored.lines[1].unit_price.amount == Decimal("0.0001")
    assert restored.created_at == T0


# --- Inventory ---------------------------------------------------------------------------


def test_inventory_available_defaults_to_on_hand_minus_reserved() -> None:
    position = InventoryPosition.model_validate(
        {"sku": "SKU-1", "on_hand": 10, "reserved": 3, "as_of": T0}
    )
    assert position.available == 7


# --- Prices ------------------------------------------------------------------------------


def make_price() -> Price:
    promotion = Promotion(
        promotion_id="SUMMER",
        price=eur("7.99"),
        starts_at=T0,
        ends_at=T0 + timedelta(days=7),
    )
    return Price(sku="SKU-1", base_price=eur("9.99"), promotions=[promotion])


def test_promotion_applies_from_its_start_inclusive() -> None:
    assert make_price().effective_at(T0) == eur("7.99")


def test_promotion_no_longer_applies_at_its_end_exclusive() -> None:
    price = make_price()
    assert price.effective_at(T0 + timedelta(days=7)) == eur("9.99")
    assert price.effective_at(T0 + timedelta(days=7) - timedelta(microseconds=1)) == eur("7.99")
    assert price.effective_at(T0 - timedelta(microseconds=1)) == eur("9.99")


def test_promotion_must_end_after_it_starts() -> None:
    with pytest.raises(ValidationError, match="ends_at must be after starts_at"):
        Promotion(promotion_id="P", price=eur("1.00"), starts_at=T0, ends_at=T0)


# --- Returns -----------------------------------------------------------------------------


@pytest.mark.parametrize("grade", [InspectionGrade.DAMAGED, InspectionGrade.MISSING])
def test_damaged_or_missing_goods_cannot_be_restocked(grade: InspectionGrade) -> None:
    with pytest.raises(ValidationError, match="cannot have disposition restock"):
        InspectionResult(line_id="1", grade=grade, disposition=Disposition.RESTOCK, quantity=1)


def test_damaged_goods_can_be_quarantined() -> None:
    result = InspectionResult(
        line_id="1",
        grade=InspectionGrade.DAMAGED,
        disposition=Disposition.QUARANTINE,
        quantity=1,
    )
    assert result.disposition is Disposition.QUARANTINE


# --- Settlement --------------------------------------------------------------------------


def test_settlement_line_accepts_net_equal_to_gross_minus_fees_minus_refunds() -> None:
    settled = SettlementLine(
        channel_order_id="AMZ-1",
        gross=eur("100.00"),
        fees=eur("15.00"),
        refunds=eur("10.00"),
        net=eur("75.00"),
    )
    assert settled.net == eur("75")


def test_settlement_line_rejects_net_mismatch() -> None:
    with pytest.raises(ValidationError, match="does not equal gross - fees - refunds"):
        SettlementLine(
            channel_order_id="AMZ-1",
            gross=eur("100.00"),
            fees=eur("15.00"),
            refunds=eur("10.00"),
            net=eur("75.01"),
        )


# --- Events and problems -----------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["order.accepted", "return.refund_approved", "a.b.c"])
def test_event_type_accepts_dotted_lowercase_names(event_type: str) -> None:
    event = EventEnvelope(
        type=event_type, occurred_at=T0, source="process_api", subject="order/ord_123"
    )
    assert event.version == 1
    assert (
        event.id
        != EventEnvelope(
            type=event_type, occurred_at=T0, source="process_api", subject="order/ord_123"
        ).id
    )


@pytest.mark.parametrize("event_type", ["order", "Order.Accepted", "order.", ".accepted", "1.x"])
def test_event_type_rejects_names_not_matching_the_pattern(event_type: str) -> None:
    with pytest.raises(ValidationError):
        EventEnvelope(type=event_type, occurred_at=T0, source="process_api", subject="order/1")


def test_problem_allows_extension_members() -> None:
    problem = Problem.model_validate(
        {"title": "Not found", "status": 404, "code": "order_not_found", "order_id": "ord_1"}
    )
    assert problem.type == "about:blank"
    assert problem.model_dump(exclude_none=True)["order_id"] == "ord_1"
