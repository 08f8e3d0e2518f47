"""Stored channel profiles: JSON in proc_channel_profiles, validated whenever a row is loaded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from gateway import Gateway
from process_api.channels import repository as repo
from process_api.channels.errors import StoredProfileInvalid
from process_api.tables import channel_profiles
from tests.process.channels.builders import profile, profile_json


def insert_raw(gateway: Gateway, channel: str, document: Any, version: int = 1) -> None:
    gateway.database.run_write(
        lambda conn: conn.execute(
            insert(channel_profiles).values(
                channel=channel,
                profile=document,
                version=version,
                updated_at=gateway.clock.now(),
                updated_by="someone",
            )
        )
    )


def test_profile_round_trips_through_its_json_column_with_version_and_author(
    gateway: Gateway,
) -> None:
    original = profile(
        "amazon_de",
        pending_reservation_expiry=timedelta(days=21),
        availability={"mode": "percentage", "percentage": "62.5", "buffer": 3},
    )
    now = gateway.clock.now()

    gateway.database.run_write(
        lambda conn: repo.upsert(conn, original, current_version=None, now=now, actor="ops")
    )
    stored = gateway.database.run_read(lambda conn: repo.load(conn, "amazon_de"))

    assert stored is not None
    assert stored.profile == original
    assert (stored.version, stored.updated_at, stored.updated_by) == (1, now, "ops")
    assert gateway.database.run_read(lambda conn: repo.load(conn, "nowhere")) is None


def test_row_that_no_longer_validates_raises_an_error_naming_its_channel(
    gateway: Gateway,
) -> None:
    insert_raw(gateway, "webshop", profile_json("webshop"))
    insert_raw(gateway, "legacy", {**profile_json("legacy"), "currency": "euro", "old": 1}, 4)

    with pytest.raises(StoredProfileInvalid) as one:
        gateway.database.run_read(lambda conn: repo.load(conn, "legacy"))
    with pytest.raises(StoredProfileInvalid) as every:
        gateway.database.run_read(repo.load_all)

    for error in (one.value, every.value):
        assert error.channels == ["legacy"]
        message = str(error)
        assert "'legacy'" in message
        assert "version 4" in message
        assert "currency: String should match pattern" in message
        assert "old: Extra inputs are not permitted" in message
    assert gateway.database.run_read(lambda conn: repo.load(conn, "webshop")) is not None


def test_row_whose_json_names_another_channel_is_invalid(gateway: Gateway) -> None:
    insert_raw(gateway, "webshop", profile_json("marketplace"))

    with pytest.raises(StoredProfileInvalid, match="names channel 'marketplace'"):
        gateway.database.run_read(lambda conn: repo.load(conn, "webshop"))


def test_update_from_a_version_that_moved_on_changes_nothing(gateway: Gateway) -> None:
    now = gateway.clock.now()
    gateway.database.run_write(
        lambda conn: repo.upsert(conn, profile(), current_version=None, now=now, actor="a")
    )

    with pytest.raises(repo.ProfileChangedConcurrently):
        gateway.database.run_write(
            lambda conn: repo.upsert(
                conn, profile(name="Changed"), current_version=7, now=now, actor="b"
            )
        )

    stored = gateway.database.run_read(lambda conn: repo.load(conn, "webshop"))
    assert stored is not None
    assert (stored.version, stored.profile.name) == (1, "Channel webshop")


def test_profiles_read_in_a_transaction_follow_every_change_of_the_stored_json(
    gateway: Gateway,
) -> None:
    insert_raw(gateway, "webshop", profile_json("webshop"))
    first = gateway.database.run_read(repo.profiles_in)["webshop"]
    again = gateway.database.run_read(repo.profiles_in)["webshop"]
    # Changed in the table itself, version untouched: still seen.
    gateway.database.run_write(
        lambda conn: conn.execute(
            channel_profiles.update().values(profile={**profile_json("webshop"), "currency": "GBP"})
        )
    )
    changed = gateway.database.run_read(repo.profiles_in)["webshop"]
    gateway.database.run_write(
        lambda conn: conn.execute(
            channel_profiles.update().values(profile={**profile_json("webshop"), "old": 1})
        )
    )

    assert again is first  # the same stored JSON: validated once
    assert changed.currency == "GBP" and first.currency != "GBP"
    with pytest.raises(StoredProfileInvalid, match="old: Extra inputs are not permitted"):
        gateway.database.run_read(repo.profiles_in)
