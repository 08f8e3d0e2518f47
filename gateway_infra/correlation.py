"""The correlation id of the work in progress, carried by a context variable.

Set at the edge for each request (or by a background job) and read by logs, events and outbound
calls. Context variables follow the work into worker threads, so units of work see it too.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

CORRELATION_HEADER = "X-Correlation-ID"
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")

correlation_id_var: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accept_correlation_id(candidate: str | None) -> str:
    """Keep a caller's id when it is well formed; otherwise make a new one."""
    if candidate and _VALID.match(candidate):
        return candidate
    return new_correlation_id()


def current_correlation_id() -> str | None:
    return correlation_id_var.get()
