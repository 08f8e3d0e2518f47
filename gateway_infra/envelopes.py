"""Events by the hundred thousand, for units of work that emit that many at once.

Building and dumping an EventEnvelope model costs about 10 microseconds an event, most of a full
availability publication. SharedFields validates the fields that many events share once, with the
model; each event adds its id, subject and channel (checked as the model checks them) and its data,
already serialised as a JSON object by the caller.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime

from pydantic import TypeAdapter

from contracts import EventEnvelope
from contracts.common import ChannelCode

__all__ = ["SharedFields", "new_event_ids"]

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SUBJECT_LENGTH = (
    EventEnvelope.model_json_schema()["properties"]["subject"]["minLength"],
    EventEnvelope.model_json_schema()["properties"]["subject"]["maxLength"],
)
_CHANNEL = TypeAdapter(ChannelCode)

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B = (1 << 62) - 1


def new_event_ids(count: int) -> list[str]:
    """count time-ordered UUIDs as text (version 7, RFC 9562): the Unix time in milliseconds,
    then 74 random bits that the batch's later ids count up from (its method of a monotonic
    random part), so they sort in the order made. The outbox's unique index on event ids then
    takes a batch at its end instead of at 600,000 random places."""
    millis = (time.time_ns() // 1_000_000) << 16 | _VERSION_7 >> 64
    first = int.from_bytes(os.urandom(10)) >> 7  # 73 random bits: room to count up
    ids: list[str] = []
    add = ids.append
    high, head = -1, ""
    for random in range(first, first + count):
        if random >> 62 != high:  # the first 16 hex digits: the same for a batch, or nearly
            high = random >> 62
            text = f"{millis | high:016x}"
            head = f"{text[:8]}-{text[8:12]}-{text[12:16]}-"
        low = f"{_VARIANT | (random & _RAND_B):016x}"
        add(f"{head}{low[:4]}-{low[4:]}")
    return ids


class SharedFields:
    """The fields many events share (type, version, instant, source, correlation ids), validated
    once with the model; each event's subject and channel are checked as the model checks them.

    Stored, an event is these fields, its id, subject, channel and data (the outbox keeps no
    envelope text: gateway_infra.outbox.envelope_of puts the envelope together when it is read).
    """

    def __init__(
        self,
        *,
        type: str,
        version: int,
        occurred_at: datetime,
        source: str,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        self.model = EventEnvelope(
            type=type,
            version=version,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
            source=source,
            subject="-",
        )
        self._channels: dict[str, str] = {}

    def channel(self, channel: str | None) -> str | None:
        """The channel, checked as the model checks it."""
        if channel is None:
            return None
        known = self._channels.get(channel)
        if known is None:
            known = self._channels[channel] = _CHANNEL.validate_python(channel)
        return known

    @staticmethod
    def subject(subject: str) -> str:
        """The subject, checked as the model checks it."""
        if not _SUBJECT_LENGTH[0] <= len(subject) <= _SUBJECT_LENGTH[1] or (
            _CONTROL_CHARACTERS.search(subject)
        ):
            raise ValueError(f"invalid event subject {subject!r}")
        return subject
