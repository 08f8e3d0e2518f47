"""SQL of channel profiles (proc_channel_profiles); every row is validated as it is loaded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import JsonValue, ValidationError
from sqlalchemy import Connection, Row, Text, cast, insert, select, update

from contracts.channel import ChannelProfile
from process_api.channels.errors import StoredProfileInvalid, validation_messages
from process_api.tables import channel_profiles


@dataclass(frozen=True)
class StoredRow:
    """A row as stored, its profile not validated yet (what an audit 'before' shows)."""

    channel: str
    profile: JsonValue
    version: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True)
class StoredProfile:
    """A validated profile with its version and who changed it last."""

    profile: ChannelProfile
    version: int
    updated_at: datetime
    updated_by: str


class ProfileChangedConcurrently(Exception):
    """The row's version moved between reading and updating it; the caller decides again."""


def load_row(conn: Connection, channel: str, *, for_update: bool = False) -> StoredRow | None:
    query = select(channel_profiles).where(channel_profiles.c.channel == channel)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).first()
    return None if row is None else _stored_row(row)


_ALL_ROWS = select(channel_profiles).order_by(channel_profiles.c.channel)
_ALL_TEXTS = select(
    channel_profiles.c.channel,
    cast(channel_profiles.c.profile, Text).label("text"),
    channel_profiles.c.version,
).order_by(channel_profiles.c.channel)


def load_rows(conn: Connection) -> list[StoredRow]:
    return [_stored_row(row) for row in conn.execute(_ALL_ROWS).all()]


def load(conn: Connection, channel: str) -> StoredProfile | None:
    """One profile, validated; StoredProfileInvalid names the channel when it no longer is."""
    row = load_row(conn, channel)
    return None if row is None else validated([row])[0]


def load_all(conn: Connection) -> list[StoredProfile]:
    """Every profile by channel, validated; StoredProfileInvalid names each invalid channel."""
    return validated(load_rows(conn))


_last_validated: dict[str, tuple[str, ChannelProfile]] = {}
"""Per channel, the stored JSON text last validated and its profile (for profiles_in)."""


def profiles_in(conn: Connection) -> dict[str, ChannelProfile]:
    """Every profile by channel, validated; StoredProfileInvalid names each invalid channel.

    Every order's intake reads the profiles in its transaction (to publish the availability it
    changed), and validating them anew each time cost more than the rest of a one-SKU
    publication. Validation is a function of the stored JSON alone, so a row whose JSON text is
    the one last validated for its channel gives that profile again; any other is validated."""
    profiles: dict[str, ChannelProfile] = {}
    problems: dict[str, list[str]] = {}
    for channel, text, version in conn.execute(_ALL_TEXTS):
        remembered = _last_validated.get(channel)
        if remembered is not None and remembered[0] == text:
            profiles[channel] = remembered[1]
            continue
        checked = _checked(channel, version, json.loads(text))
        if isinstance(checked, list):
            problems[channel] = checked
            continue
        _last_validated[channel] = (text, checked)
        profiles[channel] = checked
    if problems:
        raise StoredProfileInvalid(problems)
    return profiles


def validated(rows: list[StoredRow]) -> list[StoredProfile]:
    """The rows as profiles; StoredProfileInvalid names every row that does not validate."""
    result, problems = validate_each(rows)
    if problems:
        raise StoredProfileInvalid(problems)
    return result


def validate_each(rows: list[StoredRow]) -> tuple[list[StoredProfile], dict[str, list[str]]]:
    """The rows that validate as profiles, and what is wrong with each of the others."""
    result: list[StoredProfile] = []
    problems: dict[str, list[str]] = {}
    for row in rows:
        profile = _checked(row.channel, row.version, row.profile)
        if isinstance(profile, list):
            problems[row.channel] = profile
            continue
        result.append(
            StoredProfile(
                profile=profile,
                version=row.version,
                updated_at=row.updated_at,
                updated_by=row.updated_by,
            )
        )
    return result, problems


def upsert(
    conn: Connection,
    profile: ChannelProfile,
    *,
    current_version: int | None,
    now: datetime,
    actor: str,
) -> StoredProfile:
    """Insert version 1, or replace current_version by the next one (only if it still is)."""
    values = {
        "profile": profile.model_dump(mode="json"),
        "updated_at": now,
        "updated_by": actor,
    }
    if current_version is None:
        version = 1
        conn.execute(insert(channel_profiles).values(channel=profile.channel, version=1, **values))
    else:
        version = current_version + 1
        result = conn.execute(
            update(channel_profiles)
            .where(
                channel_profiles.c.channel == profile.channel,
                channel_profiles.c.version == current_version,
            )
            .values(version=version, **values)
        )
        if result.rowcount != 1:
            raise ProfileChangedConcurrently(profile.channel)
    return StoredProfile(profile=profile, version=version, updated_at=now, updated_by=actor)


def _checked(channel: str, version: int, stored: JsonValue) -> ChannelProfile | list[str]:
    """The stored JSON as the channel's profile, or what is wrong with it."""
    try:
        profile = ChannelProfile.model_validate(stored)
    except ValidationError as exc:
        return [f"version {version}", *validation_messages(exc)]
    if profile.channel != channel:
        return [f"its JSON names channel {profile.channel!r}"]
    return profile


def _stored_row(row: Row[Any]) -> StoredRow:
    return StoredRow(
        channel=row.channel,
        profile=row.profile,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )
