"""Webhook signatures per the Standard Webhooks scheme (standardwebhooks.com).

Each call carries `webhook-id` (the event id: the same on every attempt, so receivers dedupe on
it), `webhook-timestamp` (seconds since the epoch when the call was signed) and
`webhook-signature`: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per valid secret,
space-separated. While a rotated secret's overlap lasts, both the new and the old one sign.
Secrets are `whsec_` + base64 of 32 random bytes.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks format."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_headers(
    *, message_id: str, timestamp: datetime, body: bytes, secrets_in_use: Sequence[str]
) -> dict[str, str]:
    """The three Standard Webhooks headers for this body, signed with every secret given."""
    if not secrets_in_use:
        raise ValueError("at least one secret signs a webhook")
    text = body.decode()
    signatures = [
        Webhook(secret).sign(msg_id=message_id, timestamp=timestamp, data=text)
        for secret in secrets_in_use
    ]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": " ".join(signatures),
    }
