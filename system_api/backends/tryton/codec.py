"""Tryton's JSON-RPC value encoding: Decimal, date, datetime, time, timedelta and bytes travel
as objects tagged with ``__class__``."""

from __future__ import annotations

import base64
import datetime as dt
from decimal import Decimal
from typing import Any


def encode(value: Any) -> Any:
    """``json.dumps(default=encode)``: the typed values Tryton expects."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, dt.datetime):
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dt.time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, dt.timedelta):
        return {"__class__": "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode()}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot send {type(value).__name__} to Tryton")


def decode(value: dict[str, Any]) -> Any:
    """``json.loads(object_hook=decode)``: Tryton's typed values back as Python values."""
    kind = value.get("__class__")
    if kind is None:
        return value
    if kind == "Decimal":
        return Decimal(value["decimal"])
    if kind == "date":
        return dt.date(value["year"], value["month"], value["day"])
    if kind == "datetime":
        return dt.datetime(
            value["year"],
            value["month"],
            value["day"],
            value.get("hour", 0),
            value.get("minute", 0),
            value.get("second", 0),
            value.get("microsecond", 0),
        )
    if kind == "time":
        return dt.time(
            value.get("hour", 0),
            value.get("minute", 0),
            value.get("second", 0),
            value.get("microsecond", 0),
        )
    if kind == "timedelta":
        return dt.timedelta(seconds=value["seconds"])
    if kind == "bytes":
        return base64.b64decode(value["base64"])
    return value


def utc(value: Any) -> dt.datetime:
    """Tryton's timestamps are naive UTC: make them aware."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise TypeError(f"not a Tryton timestamp: {value!r}")
