"""Envelopes of many events at once, for units of work that emit hundreds of thousands of them.

Building and dumping an EventEnvelope model costs about 10 microseconds an event, most of a full
availability publication. An EnvelopeTemplate validates the fields that many events share once,
with the model, and has the model's own JSON dump of them as text; each event's envelope is that
text with its id, subject, channel and data filled in. Subject and channel are checked as the
model checks them; data is the caller's, already serialised as a JSON object.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter

from contracts import EventEnvelope
from contracts.common import ChannelCode

__all__ = ["EnvelopeTemplate", "new_event_ids"]

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SUBJECT_LENGTH = (
    EventEnvelope.model_json_schema()["properties"]["subject"]["minLength"],
    EventEnvelope.model_json_schema()["properties"]["subject"]["maxLength"],
)
_CHANNEL = TypeAdapter(ChannelCode)
_MARKS = ("id", "subject", "channel", "data")
_json_string = json.encoder.encode_basestring_ascii
"""What json.dumps writes for a str (the C encoder): the same text the outbox stored before."""

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_RAND_B = (1 << 62) - 1


def new_event_ids(count: int) -> list[str]:
    """count time-ordered UUIDs as text (version 7, RFC 9562): the Unix time in milliseconds,
    then 74 random bits that the batch's later ids count up from (its method of a monotonic
    random part), so they sort in the order made. The outbox's unique index on event ids then
    takes a batch at its end instead of at 600,000 random places."""
    millis = (time.time_ns() // 1_000_000) << 80 | _VERSION_7 | _VARIANT
    first = int.from_bytes(os.urandom(10)) >> 7  # 73 random bits: room to count up
    ids = []
    for random in range(first, first + count):
        text = f"{millis | (random >> 62) << 64 | (random & _RAND_B):032x}"
        ids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return ids


class EnvelopeTemplate:
    """The envelope JSON of events sharing type, version, instant, source and correlation ids.

    render() gives the text json.dumps writes for EventEnvelope.model_dump(mode="json") of the
    same event (the form the outbox has always stored)."""

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
        model = EventEnvelope(
            type=type,
            version=version,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
            causation_id=causation_id,
            source=source,
            subject="-",
        )
        self.model = model
        dumped: dict[str, Any] = model.model_dump(mode="json")
        for name in _MARKS:
            dumped[name] = f"\x00{name}\x00"
        text = json.dumps(dumped)
        pieces: list[str] = []
        for name in _MARKS:
            mark = json.dumps(f"\x00{name}\x00")
            if name == "id":  # the id stays a JSON string: keep its quotes in the text
                mark = mark[1:-1]
            before, found, text = text.partition(mark)
            if not found:
                raise ValueError(f"envelope fields out of the expected order at {name!r}")
            pieces.append(before)
        pieces.append(text)
        self._pieces = tuple(pieces)
        self._channels: dict[str, str] = {}

    def channel_json(self, channel: str | None) -> str:
        """The channel as the envelope's JSON has it, checked as the model checks it."""
        if channel is None:
            return "null"
        known = self._channels.get(channel)
        if known is None:
            known = self._channels[channel] = _json_string(_CHANNEL.validate_python(channel))
        return known

    def render(self, event_id: str, subject: str, channel_json: str, data_json: str) -> str:
        """One event's envelope text; channel_json from channel_json(), data_json the payload
        serialised as a JSON object."""
        if not _SUBJECT_LENGTH[0] <= len(subject) <= _SUBJECT_LENGTH[1] or (
            _CONTROL_CHARACTERS.search(subject)
        ):
            raise ValueError(f"invalid event subject {subject!r}")
        p0, p1, p2, p3, p4 = self._pieces
        return f"{p0}{event_id}{p1}{_json_string(subject)}{p2}{channel_json}{p3}{data_json}{p4}"
