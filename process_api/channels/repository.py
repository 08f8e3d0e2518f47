"""SQL of channel profiles (proc_channel_profiles); every row is validated as it is loaded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import JsonValue, ValidationError
from sqlalchemy import Connection, Row, insert, select, update

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


def load_rows(conn: Connection) -> list[StoredRow]:
    rows = conn.execute(select(channel_profiles).order_by(channel_profiles.c.channel)).all()
    return [_stored_row(row) for row in rows]


def load(conn: Connection, channel: str) -> StoredProfile | None:
    """One profile, validated; StoredProfileInvalid names the channel when it no longer is."""
    row = load_row(conn, channel)
    return None if row is None else validated([row])[0]


def load_all(conn: Connection) -> list[StoredProfile]:
    """Every profile by channel, validated; StoredProfileInvalid names each invalid channel."""
    return validated(load_rows(conn))


def profiles_in(conn: Connection) -> dict[str, ChannelProfile]:
    return {stored.profile.channel: stored.profile for stored in load_all(conn)}


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
        try:
            profile = ChannelProfile.model_validate(row.profile)
        except ValidationError as exc:
            problems[row.channel] = [f"version {row.version}", *validation_messages(exc)]
            continue
        if profile.channel != row.channel:
            problems[row.channel] = [f"its JSON names channel {profile.channel!r}"]
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


def _stored_row(row: Row[Any]) -> StoredRow:
    return StoredRow(
        channel=row.channel,
        profile=row.profile,
        version=row.version,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )
