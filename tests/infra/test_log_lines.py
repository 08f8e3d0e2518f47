"""JSON log lines: each carries the correlation id and trace of its work, and buyers' personal
data (names, addresses, phones, e-mails) never reaches one."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gateway_infra.correlation import TraceContext, correlation_id_var, trace_context_var
from gateway_infra.logging import REDACTED, JsonFormatter, PersonalDataFilter, redact, redact_text

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(PersonalDataFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.log_lines")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)


def written(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_line_carries_the_correlation_id_and_the_trace_of_its_work(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    logger.info("outside")
    token = correlation_id_var.set("req-9")
    trace = trace_context_var.set(TraceContext(TRACE_ID, "00f067aa0ba902b7"))
    try:
        logger.info("inside", extra={"order_id": "ord_1"})
    finally:
        trace_context_var.reset(trace)
        correlation_id_var.reset(token)

    outside, inside = written(out)
    assert outside["correlation_id"] is None and "trace_id" not in outside
    assert inside["correlation_id"] == "req-9"
    assert inside["trace_id"] == TRACE_ID
    assert inside["span_id"] == "00f067aa0ba902b7"
    assert inside["order_id"] == "ord_1"


def test_personal_data_in_fields_messages_and_arguments_is_redacted(
    lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = lines
    customer = {
        "name": "Erika Mustermann",
        "email": "erika@example.org",
        "phone": "+49 30 1234 5678",
        "billing_address": {"line1": "Heidestrasse 17", "city": "Köln"},
    }
    logger.info(
        "order from %s, call %s",
        "erika@example.org",
        "(555) 123-4567",
        extra={
            "customer": customer,
            "payload": {"order_id": "ord_1", "shipping_address": {"name": "Erika Mustermann"}},
            "note": "buyer wrote from max.muster@mail.example.com, tel 0221 1234567",
        },
    )
    logger.warning("refused", extra={"email": "x@example.org", "phone": None})

    line, second = written(out)
    text = out.getvalue()
    for personal in (
        "Erika",
        "erika@example.org",
        "1234 5678",
        "Heidestrasse",
        "max.muster",
        "123-4567",
        "1234567",
    ):
        assert personal not in text, personal
    assert line["message"] == f"order from {REDACTED}, call {REDACTED}"
    assert line["customer"] == REDACTED
    assert line["payload"] == {"order_id": "ord_1", "shipping_address": REDACTED}
    assert second["email"] == REDACTED and second["phone"] is None


def test_ids_dates_amounts_and_counts_are_left_alone() -> None:
    kept = (
        "order ord_4f3a2b1c0d9e8f7a6b5c placed 2026-11-27T10:00:00Z",
        "correlation 0123abcd-0234-4567-8901-abcdef012345",
        "total 1290.50 EUR after 3 attempts, +100.50 adjustment, version 1.45.2",
        "tracking 003404341234567890 at 12:30:45",
        "sku MUG-RED-350 quantity 12",
    )
    for text in kept:
        assert redact_text(text) == text, text
    assert redact({"sku": "MUG-RED-350", "quantity": 3}) == {"sku": "MUG-RED-350", "quantity": 3}


@pytest.mark.parametrize(
    "phone",
    ["+49 30 1234 5678", "+1-555-123-4567", "0049 221 1234567", "(555) 123-4567", "030 1234 5678"],
)
def test_phone_numbers_are_masked_in_text(phone: str) -> None:
    assert redact_text(f"call {phone} now") == f"call {REDACTED} now"
