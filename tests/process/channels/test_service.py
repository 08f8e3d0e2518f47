"""ChannelProfiles: versioned changes with optimistic concurrency, audit events, cache, seeding."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from sqlalchemy import Connection

from gateway import Gateway
from gateway_infra.clock import ManualClock
from gateway_infra.unit_of_work import UnitOfWork
from process_api.channels import repository as repo
from process_api.channels.errors import (
    ChannelProfileRejected,
    ChannelProfilesNotLoaded,
    ChannelProfileVersionConflict,
    StoredProfileInvalid,
)
from process_api.channels.repository import StoredRow
from process_api.channels.service import ChannelProfiles
from tests.process.channels.builders import changed_events, profile, profile_json
from tests.process.channels.test_repository import insert_raw


async def test_put_creates_version_1_and_each_change_makes_the_next_version(
    channels: ChannelProfiles,
) -> None:
    created = await channels.put(profile(), actor="ops", expected_version=None)
    replaced = await channels.put(
        profile(return_window=timedelta(days=14)), actor="ops", expected_version=1
    )

    assert (created.version, created.created, created.changed) == (1, True, True)
    assert (replaced.version, replaced.created, replaced.changed) == (2, False, True)
    stored = await channels.read("webshop")
    assert stored is not None
    assert stored.version == 2
    assert stored.profile.return_window == timedelta(days=14)
    assert await channels.get("webshop") == replaced.profile


async def test_storing_an_equal_profile_keeps_the_version_and_records_nothing(
    channels: ChannelProfiles, gateway: Gateway
) -> None:
    await channels.put(profile(), actor="ops", expected_version=None)

    again = await channels.put(profile(), actor="someone-else", expected_version=1)

    assert (again.version, again.created, again.changed) == (1, False, False)
    assert len(changed_events(gateway)) == 1
    stored = await channels.read("webshop")
    assert stored is not None
    assert stored.updated_by == "ops"


async def test_put_expecting_another_version_is_a_409_conflict_and_changes_nothing(
    channels: ChannelProfiles, gateway: Gateway
) -> None:
    await channels.put(profile(), actor="ops", expected_version=None)
    await channels.put(profile(name="Second"), actor="ops", expected_version=1)

    with pytest.raises(ChannelProfileVersionConflict) as conflict:
        await channels.put(profile(name="Lost update"), actor="ops", expected_version=1)

    assert conflict.value.problem.status == 409
    assert conflict.value.problem.code == "channel-profile-version-conflict"
    assert (conflict.value.expected, conflict.value.current) == (1, 2)
    stored = await channels.read("webshop")
    assert stored is not None
    assert (stored.version, stored.profile.name) == (2, "Second")
    assert len(changed_events(gateway)) == 2


async def test_put_expecting_a_version_of_a_missing_profile_conflicts(
    channels: ChannelProfiles,
) -> None:
    with pytest.raises(ChannelProfileVersionConflict) as conflict:
        await channels.put(profile(), actor="ops", expected_version=1)

    assert conflict.value.current is None
    assert await channels.read("webshop") is None


async def test_every_change_is_audited_with_actor_before_after_and_version(
    channels: ChannelProfiles, gateway: Gateway, clock: ManualClock
) -> None:
    first = profile()
    second = profile(availability={"mode": "shared_pool", "buffer": 5}, refund_timing="on_receipt")
    await channels.put(first, actor="client:ic_1", expected_version=None)
    clock.advance(timedelta(minutes=3))
    await channels.put(second, actor="operator:anna", expected_version=1)

    created, changed = changed_events(gateway)

    assert created.data["before"] is None
    assert created.data["after"] == first.model_dump(mode="json")
    assert (created.data["version"], created.data["previous_version"]) == (1, None)
    assert created.data["actor"] == "client:ic_1"
    assert changed.data["before"] == first.model_dump(mode="json")
    assert changed.data["after"] == second.model_dump(mode="json")
    assert (changed.data["version"], changed.data["previous_version"]) == (2, 1)
    assert changed.data["actor"] == "operator:anna"
    assert changed.data["changed_fields"] == ["availability", "refund_timing"]
    assert changed.occurred_at == clock.now()
    assert (changed.channel, changed.subject) == ("webshop", "channel_profile/webshop")


async def test_a_stored_profile_that_no_longer_validates_is_replaced_by_put(
    channels: ChannelProfiles, gateway: Gateway
) -> None:
    broken = {**profile_json(), "currency": "euro"}
    insert_raw(gateway, "webshop", broken, version=3)
    with pytest.raises(StoredProfileInvalid):
        await channels.read("webshop")

    saved = await channels.put(profile(), actor="ops", expected_version=3)

    assert saved.version == 4
    [event] = changed_events(gateway)
    assert event.data["before"] == broken
    stored = await channels.read("webshop")
    assert stored is not None
    assert stored.profile == profile()


async def test_an_invalid_stored_profile_fails_reads_of_its_own_channel_only(
    channels: ChannelProfiles, gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    insert_raw(gateway, "legacy", {**profile_json("legacy"), "refund_timing": "never"})
    await channels.put(profile("webshop"), actor="ops", expected_version=None)

    with caplog.at_level(logging.ERROR, logger="gateway.channels"):
        await channels.seed([], actor="config")

    assert "'legacy'" in caplog.text
    assert await channels.get("webshop") == profile("webshop")
    with pytest.raises(StoredProfileInvalid, match=r"'legacy'.*refund_timing"):
        await channels.get("legacy")
    with pytest.raises(StoredProfileInvalid, match="'legacy'"):
        await channels.list()
    with pytest.raises(StoredProfileInvalid, match="'legacy'"):
        channels.snapshot()
    await channels.put(profile("legacy"), actor="ops", expected_version=1)
    assert await channels.get("legacy") == profile("legacy")
    assert sorted(channels.snapshot()) == ["legacy", "webshop"]


async def test_put_refuses_a_throttling_tier_the_gateway_does_not_know(
    channels: ChannelProfiles,
) -> None:
    with pytest.raises(ChannelProfileRejected) as rejected:
        await channels.put(profile(throttling_tier="gold"), actor="ops", expected_version=None)

    assert rejected.value.problem.status == 422
    assert rejected.value.extensions["errors"][0]["pointer"] == "#/throttling_tier"
    assert await channels.read("webshop") is None


async def test_concurrent_conditional_updates_let_exactly_one_win(
    channels: ChannelProfiles, gateway: Gateway
) -> None:
    await channels.put(profile(), actor="ops", expected_version=None)

    outcomes = await asyncio.gather(
        *(
            channels.put(profile(name=f"Edit {n}"), actor=f"c{n}", expected_version=1)
            for n in range(8)
        ),
        return_exceptions=True,
    )

    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(o, ChannelProfileVersionConflict) for o in outcomes if o not in winners)
    assert [e.data["version"] for e in changed_events(gateway)] == [1, 2]


async def test_concurrent_unconditional_puts_each_make_a_version(
    channels: ChannelProfiles, gateway: Gateway
) -> None:
    outcomes = await asyncio.gather(
        *(
            channels.put(profile("amazon_de", name=f"Edit {n}"), actor="ops", expected_version=None)
            for n in range(6)
        )
    )

    assert sorted(o.version for o in outcomes) == [1, 2, 3, 4, 5, 6]
    assert [o.created for o in outcomes].count(True) == 1
    assert [e.data["version"] for e in changed_events(gateway)] == [1, 2, 3, 4, 5, 6]


async def test_a_first_write_that_loses_the_insert_race_is_decided_again(
    channels: ChannelProfiles, gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    await channels.put(profile(name="Won the race"), actor="other", expected_version=None)
    real_load_row = repo.load_row
    calls: list[str] = []

    def load_row_that_misses_once(conn: Connection, channel: str, **kw: bool) -> StoredRow | None:
        calls.append(channel)
        return None if len(calls) == 1 else real_load_row(conn, channel, **kw)

    monkeypatch.setattr(repo, "load_row", load_row_that_misses_once)

    saved = await channels.put(profile(name="Lost the race"), actor="ops", expected_version=None)

    assert len(calls) == 2
    assert (saved.version, saved.created) == (2, False)
    assert [e.data["previous_version"] for e in changed_events(gateway)] == [None, 1]


async def test_get_is_cached_for_a_few_seconds_but_shows_local_changes_at_once(
    channels: ChannelProfiles, gateway: Gateway, clock: ManualClock
) -> None:
    other_process = ChannelProfiles(gateway.store)
    await channels.put(profile(name="First"), actor="ops", expected_version=None)
    assert (await channels.get("webshop")) == profile(name="First")

    await other_process.put(profile(name="Elsewhere"), actor="ops", expected_version=1)
    await other_process.put(profile("marketplace"), actor="ops", expected_version=None)
    stale = await channels.get("webshop")
    clock.advance(timedelta(seconds=5))
    fresh = await channels.get("webshop")
    await channels.put(profile(name="Local"), actor="ops", expected_version=2)
    local = await channels.get("webshop")

    assert stale == profile(name="First")
    assert fresh == profile(name="Elsewhere")
    assert await channels.get("marketplace") == profile("marketplace")
    assert local == profile(name="Local")
    assert await channels.get("nowhere") is None


async def test_snapshot_serves_every_profile_without_io_once_loaded(
    channels: ChannelProfiles,
) -> None:
    with pytest.raises(ChannelProfilesNotLoaded):
        channels.snapshot()
    await channels.put(profile("webshop"), actor="ops", expected_version=None)
    await channels.put(profile("marketplace"), actor="ops", expected_version=None)

    listed = await channels.list()
    await channels.put(profile("webshop", name="Renamed"), actor="ops", expected_version=1)
    snapshot = channels.snapshot()

    assert [p.channel for p in listed] == ["marketplace", "webshop"]
    assert dict(snapshot) == {
        "marketplace": profile("marketplace"),
        "webshop": profile("webshop", name="Renamed"),
    }


async def test_profiles_in_reads_with_the_connection_of_a_unit_of_work(
    channels: ChannelProfiles, gateway: Gateway
) -> None:
    await channels.put(profile("webshop"), actor="ops", expected_version=None)

    def unit(uow: UnitOfWork) -> list[str]:
        return sorted(channels.profiles_in(uow.conn))

    assert await gateway.store.write(unit) == ["webshop"]


async def test_seeding_creates_missing_profiles_and_never_overwrites_a_changed_one(
    channels: ChannelProfiles, gateway: Gateway
) -> None:
    changed = profile("webshop", name="Changed by ops")
    await channels.put(changed, actor="ops", expected_version=None)

    result = await channels.seed(
        [profile("webshop"), profile("marketplace"), profile("amazon_de")], actor="config"
    )

    assert result.created == ["marketplace", "amazon_de"]
    assert result.kept == ["webshop"]
    assert result.differing == ["webshop"]
    assert (await channels.get("webshop")) == changed
    assert sorted(channels.snapshot()) == ["amazon_de", "marketplace", "webshop"]
    events = changed_events(gateway)
    assert [(e.channel, e.data["actor"]) for e in events] == [
        ("webshop", "ops"),
        ("marketplace", "config"),
        ("amazon_de", "config"),
    ]


async def test_seeding_again_changes_nothing(channels: ChannelProfiles, gateway: Gateway) -> None:
    seeded = [profile("webshop"), profile("marketplace")]
    await channels.seed(seeded, actor="config")

    again = channels.seed_sync(seeded, actor="config")

    assert (again.created, again.kept, again.differing) == ([], ["webshop", "marketplace"], [])
    assert len(changed_events(gateway)) == 2


async def test_seeding_refuses_duplicate_channels_and_unknown_tiers(
    channels: ChannelProfiles,
) -> None:
    with pytest.raises(ValueError, match="duplicate channel profiles to seed: webshop"):
        await channels.seed([profile("webshop"), profile("webshop")], actor="config")
    with pytest.raises(ChannelProfileRejected, match="gold"):
        await channels.seed([profile("webshop", throttling_tier="gold")], actor="config")

    assert await channels.list() == []
