"""Cursors for paging through orders: opaque to clients, stable under concurrent inserts."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from gateway_infra.problems import VALIDATION_ERROR, ProblemError


def encode_cursor(updated_at: datetime, order_id: str) -> str:
    raw = json.dumps([updated_at.isoformat(), order_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; a 422 problem pointing at `cursor` when it is not ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, order_id = json.loads(raw)
        position = datetime.fromisoformat(at), str(order_id)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ProblemError(
            VALIDATION_ERROR,
            "the cursor is not one this API issued",
            errors=[{"parameter": "cursor", "in": "query", "detail": "unknown cursor"}],
        ) from exc
    if position[0].tzinfo is None:
        raise ProblemError(
            VALIDATION_ERROR,
            "the cursor is not one this API issued",
            errors=[{"parameter": "cursor", "in": "query", "detail": "unknown cursor"}],
        )
    return position
