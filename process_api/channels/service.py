"""Reading and changing channel profiles: versioned, audited through the outbox, briefly cached.

Every change writes the next version and a `channel_profile.changed` event (actor, before, after)
in one transaction. Reads on hot paths use a short in-process cache; code that must see the
profiles of its own transaction reads them with its connection (profiles_in).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NamedTuple, TypeVar

from pydantic import JsonValue
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from contracts.channel import ChannelProfile
from gateway_infra.unit_of_work import Store, UnitOfWork
from process_api import audit
from process_api.channels import repository as repo
from process_api.channels.config import load_profiles_config
from process_api.channels.errors import (
    ChannelProfileRejected,
    ChannelProfilesNotLoaded,
    ChannelProfileVersionConflict,
    StoredProfileInvalid,
    profile_rule_violations,
)
from process_api.channels.repository import StoredProfile, StoredRow

__all__ = ["ChannelProfiles", "SavedProfile", "SeedResult", "load_profiles_config"]

log = logging.getLogger("gateway.channels")

SOURCE = "process_api.channels"
CHANGED_EVENT = "channel_profile.changed"
# A concurrent first write of the same channel (another worker, another request) makes an insert
# fail; deciding again against the row it wrote is enough.
_RACES = (IntegrityError, repo.ProfileChangedConcurrently)
_ATTEMPTS = 3
T = TypeVar("T")
ProfileListener = Callable[[ChannelProfile], Awaitable[object]]


class SavedProfile(NamedTuple):
    """The outcome of put: the profile as stored and its version."""

    profile: ChannelProfile
    version: int
    created: bool
    """No profile existed for the channel before."""
    changed: bool
    """False when the stored profile was equal already: no new version, no event."""


@dataclass(frozen=True)
class SeedResult:
    created: list[str] = field(default_factory=list)
    """Channels whose profile was written from configuration."""
    kept: list[str] = field(default_factory=list)
    """Channels that had a profile already; it stays as it is."""
    differing: list[str] = field(default_factory=list)
    """Kept channels whose stored profile differs from the configured one."""


@dataclass(frozen=True)
class _Cached:
    profiles: Mapping[str, ChannelProfile]
    invalid: Mapping[str, list[str]]
    """Stored rows that no longer validate, by channel: reading them raises."""
    fresh_until: datetime

    def get(self, channel: str) -> ChannelProfile | None:
        if channel in self.invalid:
            raise StoredProfileInvalid({channel: self.invalid[channel]})
        return self.profiles.get(channel)

    def every(self) -> Mapping[str, ChannelProfile]:
        if self.invalid:
            raise StoredProfileInvalid(self.invalid)
        return self.profiles


class ChannelProfiles:
    """The channel profiles of this gateway, from its database."""

    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float = 5.0,
        known_tiers: Collection[str] | None = None,
    ) -> None:
        self.store = store
        self.cache_ttl = timedelta(seconds=cache_seconds)
        self.known_tiers = frozenset(known_tiers) if known_tiers is not None else None
        self._lock = threading.Lock()
        self._cached: _Cached | None = None
        self._generation = 0
        self._loading = False
        self._listeners: list[ProfileListener] = []

    # ------------------------------------------------------------------ reading

    async def get(self, channel: str) -> ChannelProfile | None:
        """The channel's profile, from a cache at most cache_seconds old (local changes at once).

        StoredProfileInvalid when the channel's stored profile no longer validates; an invalid
        profile of another channel does not stop this one.
        """
        cached = self._cached
        # While one caller reloads an expired cache, the others keep its values a moment longer
        # rather than all querying the database at once.
        if cached is None or (self.store.clock.now() >= cached.fresh_until and not self._loading):
            cached = await self._load()
        return cached.get(channel)

    async def read(self, channel: str) -> StoredProfile | None:
        """The channel's profile with its version, from the database (for conditional updates)."""
        return await self.store.read(lambda conn: repo.load(conn, channel))

    def read_sync(self, channel: str) -> StoredProfile | None:
        """read on the calling thread, for command-line tools (never inside a unit of work)."""
        return self.store.database.run_read(lambda conn: repo.load(conn, channel))

    async def refresh(self) -> Mapping[str, ChannelProfile]:
        """Load every profile into the cache and return them by channel."""
        return (await self._load()).every()

    async def _load(self) -> _Cached:
        generation = self._generation
        self._loading = True
        try:
            stored, invalid = await self.store.read(
                lambda conn: repo.validate_each(repo.load_rows(conn))
            )
        finally:
            self._loading = False
        loaded = _Cached(
            profiles=MappingProxyType({s.profile.channel: s.profile for s in stored}),
            invalid=MappingProxyType(invalid),
            fresh_until=self.store.clock.now() + self.cache_ttl,
        )
        with self._lock:
            # A change made here while this read ran would be hidden by its older result.
            if generation == self._generation:
                self._cached = loaded
        return loaded

    def snapshot(self) -> Mapping[str, ChannelProfile]:
        """Every profile as last loaded in this process, plus local changes; no I/O.

        For synchronous code that can live with a few seconds of staleness. Code inside a unit of
        work that must agree with its own transaction reads profiles_in(uow.conn) instead.
        """
        cached = self._cached
        if cached is None:
            raise ChannelProfilesNotLoaded()
        return cached.every()

    def profiles_in(self, conn: Connection) -> dict[str, ChannelProfile]:
        """Every profile by channel, read with the caller's connection (inside its transaction)."""
        return repo.profiles_in(conn)

    # ------------------------------------------------------------------ changing

    async def put(
        self, profile: ChannelProfile, *, actor: str, expected_version: int | None
    ) -> SavedProfile:
        """Create or replace the channel's profile.

        With expected_version, only if the stored profile is at that version, else
        ChannelProfileVersionConflict (409). A replacement that changes nothing keeps the version
        and emits nothing; a change emits channel_profile.changed in the same transaction.
        """
        violations = profile_rule_violations(profile, self.known_tiers)
        if violations:
            raise ChannelProfileRejected(profile.channel, violations)
        saved = await self._write(lambda uow: self._put_unit(uow, profile, actor, expected_version))
        if saved.changed:
            self._remember({saved.profile.channel: saved.profile})
            await self._tell_listeners([saved.profile])
        return saved

    def on_change(self, listener: ProfileListener) -> None:
        """Call listener with each profile created or changed, after its transaction committed."""
        self._listeners.append(listener)

    async def _tell_listeners(self, changed: Iterable[ChannelProfile]) -> None:
        for profile in changed:
            for listener in self._listeners:
                try:
                    await listener(profile)
                except Exception:  # the change stands; the periodic sweep catches up
                    log.exception(
                        "channel profile listener failed", extra={"channel": profile.channel}
                    )

    def _put_unit(
        self,
        uow: UnitOfWork,
        profile: ChannelProfile,
        actor: str,
        expected_version: int | None,
    ) -> SavedProfile:
        current = repo.load_row(uow.conn, profile.channel, for_update=True)
        current_version = None if current is None else current.version
        if expected_version is not None and expected_version != current_version:
            raise ChannelProfileVersionConflict(
                profile.channel, expected=expected_version, current=current_version
            )
        if current is not None and _equals(current, profile):
            return SavedProfile(profile, current.version, created=False, changed=False)
        stored = repo.upsert(
            uow.conn, profile, current_version=current_version, now=uow.now, actor=actor
        )
        _emit_changed(uow, current, stored)
        return SavedProfile(profile, stored.version, created=current is None, changed=True)

    async def seed(self, profiles: Iterable[ChannelProfile], *, actor: str) -> SeedResult:
        """Create the profiles whose channel has none yet; never touch an existing one.

        For configuration at start-up: a profile changed through the API stays as it is. Then
        loads every profile into the cache (snapshot() works from then on). A stored profile that
        no longer validates is logged, not raised: the gateway starts, reads of that channel fail
        naming it, and PUT /process/v1/channels/{channel} repairs it.
        """
        wanted = self._checked_seed(profiles)
        result = SeedResult()
        if wanted:
            result = await self._write(lambda uow: _seed_unit(uow, wanted, actor))
            _log_seeded(result)
        loaded = await self._load()
        if loaded.invalid:
            log.error("%s", StoredProfileInvalid(loaded.invalid))
        await self._tell_listeners(p for p in wanted if p.channel in result.created)
        return result

    def seed_sync(self, profiles: Iterable[ChannelProfile], *, actor: str) -> SeedResult:
        """seed on the calling thread, for command-line tools."""
        wanted = self._checked_seed(profiles)
        if not wanted:
            return SeedResult()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                result = self.store.write_sync(lambda uow: _seed_unit(uow, wanted, actor))
            except _RACES:
                if attempt == _ATTEMPTS:
                    raise
                continue
            _log_seeded(result)
            self._invalidate()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    async def _write(self, unit: Callable[[UnitOfWork], T]) -> T:
        """Run the unit; when a concurrent first write of the same channel won, run it again."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self.store.write(unit)
            except _RACES:
                if attempt == _ATTEMPTS:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked_seed(self, profiles: Iterable[ChannelProfile]) -> list[ChannelProfile]:
        wanted = list(profiles)
        channels = [p.channel for p in wanted]
        duplicates = sorted({c for c in channels if channels.count(c) > 1})
        if duplicates:
            raise ValueError(f"duplicate channel profiles to seed: {', '.join(duplicates)}")
        for profile in wanted:
            violations = profile_rule_violations(profile, self.known_tiers)
            if violations:
                raise ChannelProfileRejected(profile.channel, violations)
        return wanted

    # ------------------------------------------------------------------ cache

    def _remember(self, changed: Mapping[str, ChannelProfile]) -> None:
        """Show local changes at once; the next get() reloads everything."""
        with self._lock:
            self._generation += 1
            cached = self._cached
            if cached is not None:
                self._cached = _Cached(
                    profiles=MappingProxyType({**cached.profiles, **changed}),
                    invalid=MappingProxyType(
                        {c: m for c, m in cached.invalid.items() if c not in changed}
                    ),
                    fresh_until=self.store.clock.now(),
                )

    def _invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            cached = self._cached
            if cached is not None:
                self._cached = _Cached(cached.profiles, cached.invalid, self.store.clock.now())

    # Last: inside the class body, the name would shadow the builtin in later annotations.
    async def list(self) -> list[ChannelProfile]:
        """Every profile by channel, from the database; refreshes the cache."""
        return [*(await self.refresh()).values()]


def _seed_unit(uow: UnitOfWork, wanted: list[ChannelProfile], actor: str) -> SeedResult:
    existing = {row.channel: row for row in repo.load_rows(uow.conn)}
    result = SeedResult()
    for profile in wanted:
        row = existing.get(profile.channel)
        if row is None:
            stored = repo.upsert(uow.conn, profile, current_version=None, now=uow.now, actor=actor)
            _emit_changed(uow, None, stored)
            result.created.append(profile.channel)
            continue
        result.kept.append(profile.channel)
        if not _equals(row, profile):
            result.differing.append(profile.channel)
    return result


def _log_seeded(result: SeedResult) -> None:
    if result.created:
        log.info("channel profiles created from configuration: %s", ", ".join(result.created))
    if result.differing:
        log.warning(
            "configured channel profiles differ from the stored ones, which stay in force "
            "(change them through PUT /process/v1/channels/{channel}): %s",
            ", ".join(result.differing),
        )


def _equals(row: StoredRow, profile: ChannelProfile) -> bool:
    try:
        [stored] = repo.validated([row])
    except StoredProfileInvalid:
        return False
    return stored.profile == profile


def _emit_changed(uow: UnitOfWork, before: StoredRow | None, after: StoredProfile) -> None:
    """The audit record of a change: who, when (occurred_at), the whole profile before and after."""
    after_json = after.profile.model_dump(mode="json")
    before_json = before.profile if before is not None else None
    if isinstance(before_json, dict):
        keys = sorted(set(before_json) | set(after_json))
        changed_fields = [k for k in keys if before_json.get(k) != after_json.get(k)]
    else:
        changed_fields = sorted(after_json)
    data: dict[str, JsonValue] = {
        "channel": after.profile.channel,
        "version": after.version,
        "previous_version": None if before is None else before.version,
        "actor": after.updated_by,
        "changed_fields": list(changed_fields),
        "before": before_json,
        "after": after_json,
    }
    uow.emit(
        CHANGED_EVENT,
        source=SOURCE,
        subject=f"channel_profile/{after.profile.channel}",
        channel=after.profile.channel,
        data=data,
    )
    audit.record(
        uow,
        actor=after.updated_by,
        action=CHANGED_EVENT,
        subject=f"channel_profile/{after.profile.channel}",
        channel=after.profile.channel,
        before=before_json,
        after=after_json,
    )
