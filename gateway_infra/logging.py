"""JSON log lines, one per record, each carrying the correlation id (and the trace id) of the work
that wrote it, with buyers' personal data redacted.

Redaction works on what a line would show: values under personal-data keys (buyer names,
addresses, phones, e-mails: see PERSONAL_DATA_KEYS) are replaced wherever they sit in the extra=
fields, and e-mail addresses and phone numbers are masked in every text, the message included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway_infra.correlation import current_correlation_id, current_trace

_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}

REDACTED = "[redacted]"

PERSONAL_DATA_KEYS = frozenset(
    {
        "customer",
        "buyer",
        "customer_name",
        "buyer_name",
        "recipient",
        "first_name",
        "last_name",
        "full_name",
        "email",
        "e_mail",
        "email_address",
        "phone",
        "phone_number",
        "mobile",
        "address",
        "billing_address",
        "shipping_address",
        "line1",
        "line2",
        "street",
        "postal_code",
    }
)
"""Keys whose values are buyers' personal data, whatever their shape (compared in lowercase)."""

_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
# International numbers (+ or 00 prefix), North American (555) 123-4567 / 555-123-4567 and
# trunk-prefixed national numbers such as 030 1234 5678. Word characters or hyphens on either
# side (ids, UUIDs, dates) keep a match from starting or ending there.
_PHONE = re.compile(
    r"(?<![\w\-+])(?:"
    r"(?:\+|00)\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,5}){1,4}"
    r"|\(\d{3}\)\s?\d{3}[\s.\-]\d{4}"
    r"|\d{3}[\s.\-]\d{3}[\s.\-]\d{4}"
    r"|0\d{2,4}[\s\-/]\d{3,4}[\s\-]?\d{3,5}"
    r")(?![\w\-])"
)


def redact_text(text: str) -> str:
    """The text with e-mail addresses and phone numbers masked."""
    if "@" in text:
        text = _EMAIL.sub(REDACTED, text)
    return _PHONE.sub(_phone_or_not, text)


def _phone_or_not(match: re.Match[str]) -> str:
    # A phone number has 7 to 15 digits (E.164); shorter runs are amounts, counts or versions.
    digits = sum(c.isdigit() for c in match[0])
    return REDACTED if 7 <= digits <= 15 else match[0]


def redact(value: Any) -> Any:
    """A copy of value with personal data redacted: values under personal-data keys replaced,
    e-mail addresses and phone numbers masked in the remaining text."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            key: (
                REDACTED
                if isinstance(key, str) and key.lower() in PERSONAL_DATA_KEYS and value is not None
                else redact(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item) for item in value]
    if hasattr(value, "model_dump"):  # a pydantic model: redact what it would show
        return redact(value.model_dump(mode="json"))
    return value


class PersonalDataFilter(logging.Filter):
    """Redacts personal data in a record before any handler formats it: the message (with its
    arguments merged) and the extra= fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg = redact_text(message)
        record.args = None
        for key, value in list(vars(record).items()):
            if key in _STANDARD_ATTRS or key.startswith("_"):
                continue
            if key.lower() in PERSONAL_DATA_KEYS and value is not None:
                setattr(record, key, REDACTED)
            else:
                setattr(record, key, redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; extra= fields become keys."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": current_correlation_id(),
        }
        trace = current_trace()
        if trace is not None:
            payload["trace_id"] = trace.trace_id
            payload["span_id"] = trace.span_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    """Route the gateway's and uvicorn's loggers to stderr in one format, personal data redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(PersonalDataFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
