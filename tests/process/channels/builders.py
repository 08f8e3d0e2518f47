"""Builders for channel-profile tests: profiles with readable defaults, the audit events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from contracts import EventEnvelope
from contracts.channel import ChannelProfile
from gateway import Gateway
from gateway_infra.outbox import ENVELOPE_COLUMNS, event_of
from gateway_infra.tables import outbox

CHANGED = "channel_profile.changed"


def profile(channel: str = "webshop", **overrides: Any) -> ChannelProfile:
    values: dict[str, Any] = {"channel": channel, "name": f"Channel {channel}", "currency": "EUR"}
    values.update(overrides)
    return ChannelProfile.model_validate(values)


def profile_json(channel: str = "webshop", **overrides: Any) -> dict[str, Any]:
    return profile(channel, **overrides).model_dump(mode="json")


def changed_events(gateway: Gateway) -> list[EventEnvelope]:
    """The channel_profile.changed events in the outbox, oldest first."""
    rows = gateway.database.run_read(
        lambda conn: conn.execute(
            select(*ENVELOPE_COLUMNS).where(outbox.c.type == CHANGED).order_by(outbox.c.id)
        ).all()
    )
    return [event_of(row) for row in rows]
