"""Schemathesis hooks of the contract runs (pytest and the CLI): a fresh Idempotency-Key per case.

A state-changing partner POST replays the stored answer when its key comes again, and refuses the
key with another payload; generated keys repeat ("0", the documented example), so each case gets a
key of its own. A key the case means to be invalid or missing is left as it is.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import schemathesis

from partner_api.edge import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_SCHEMA

_VALID_KEY = re.compile(str(IDEMPOTENCY_KEY_SCHEMA["pattern"]))


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    headers = case.headers
    if not headers:
        return
    for name, value in list(headers.items()):
        is_key = name.lower() == IDEMPOTENCY_HEADER.lower()
        if is_key and isinstance(value, str) and _VALID_KEY.match(value):
            headers[name] = f"contract-{uuid.uuid4()}"
