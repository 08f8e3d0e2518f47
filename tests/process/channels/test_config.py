"""Channel profiles from configuration: validated when loaded, every mistake reported at once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from process_api.channels.config import ChannelProfilesConfigError, load_profiles_config
from process_api.channels.demo import DEMO_CHANNEL_PROFILES
from tests.process.channels.builders import profile, profile_json

ROOT = Path(__file__).resolve().parents[3]


def test_profiles_load_from_inline_json_and_from_a_file(tmp_path: Path) -> None:
    document = json.dumps([profile_json("webshop"), {**profile_json("amazon_de"), "name": "A"}])
    path = tmp_path / "channels.json"
    path.write_text(document)

    inline = load_profiles_config(document)
    from_file = load_profiles_config(str(path))

    assert inline == from_file == [profile("webshop"), profile("amazon_de", name="A")]


def test_minimal_profiles_take_the_documented_defaults() -> None:
    [loaded] = load_profiles_config('[{"channel": "webshop", "name": "Shop", "currency": "EUR"}]')

    assert loaded.reserve_pending_orders is True
    assert loaded.throttling_tier == "standard"


def test_error_lists_every_invalid_profile_with_pydantics_messages() -> None:
    document = json.dumps(
        [
            profile_json("webshop"),
            {**profile_json("amazon_de"), "currency": "euro"},
            profile_json("marketplace"),
            {
                **profile_json("walmart_us"),
                "availability": {"mode": "ring_fenced"},
                "return_window": "a month",
            },
            "not a profile",
        ]
    )

    with pytest.raises(ChannelProfilesConfigError) as raised:
        load_profiles_config(document)

    problems = raised.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("profile #2 (channel 'amazon_de'): currency: String should")
    assert problems[1].startswith("profile #4 (channel 'walmart_us'): ")
    assert "a ring_fenced policy needs ring_fenced_quantity" in problems[1]
    assert "return_window: Input should be a valid timedelta" in problems[1]
    assert problems[2].startswith("profile #5: ")
    assert "inline JSON: 3 problem(s)" in str(raised.value)


def test_a_channel_defined_twice_is_an_error() -> None:
    document = json.dumps([profile_json("webshop"), profile_json("x"), profile_json("webshop")])

    with pytest.raises(ChannelProfilesConfigError) as raised:
        load_profiles_config(document)

    assert raised.value.problems == ["channel 'webshop' is defined 2 times (profiles #1, #3)"]


def test_tiers_unknown_to_the_gateway_are_errors_when_the_tiers_are_given() -> None:
    document = json.dumps([profile_json("webshop", throttling_tier="gold")])

    with pytest.raises(ChannelProfilesConfigError, match="unknown throttling tier 'gold'"):
        load_profiles_config(document, known_tiers={"standard", "premium"})
    assert load_profiles_config(document)[0].throttling_tier == "gold"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[{", "not valid JSON"),
        ('{"channel": "webshop"}', "expected a JSON array of channel profiles"),
        ("/nonexistent/channels.json", "cannot read the file"),
    ],
)
def test_unusable_configuration_says_why(value: str, message: str) -> None:
    with pytest.raises(ChannelProfilesConfigError, match=message):
        load_profiles_config(value)


def test_demo_profiles_use_tiers_of_the_default_settings() -> None:
    assert [p.channel for p in DEMO_CHANNEL_PROFILES] == ["webshop", "marketplace"]
    assert {p.throttling_tier for p in DEMO_CHANNEL_PROFILES} <= {"standard", "premium"}


def test_every_example_in_the_channel_profiles_guide_is_a_valid_configuration() -> None:
    guide = (ROOT / "docs" / "channel-profiles.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", guide, flags=re.DOTALL)

    loaded = [load_profiles_config(block) for block in blocks]

    assert len(blocks) >= 2
    channels = {p.channel for profiles in loaded for p in profiles}
    assert {"webshop", "amazon_de", "walmart_us"} <= channels
