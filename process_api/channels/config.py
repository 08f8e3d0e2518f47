"""Channel profiles from configuration: a JSON array, inline or in a file, validated whole."""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from pydantic import ValidationError

from contracts.channel import ChannelProfile
from process_api.channels.errors import profile_rule_violations, validation_messages


class ChannelProfilesConfigError(ValueError):
    """The configured profiles are unusable; `problems` lists every mistake found."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(
            f"channel profiles from {source}: {len(problems)} problem(s)\n"
            + "\n".join(f"  - {problem}" for problem in problems)
        )


def load_profiles_config(
    path_or_json: str, *, known_tiers: Collection[str] | None = None
) -> list[ChannelProfile]:
    """Profiles from a JSON array (text starting with '[') or from a file holding one.

    Every profile is validated; the error lists each invalid one with pydantic's messages, and
    duplicate channels and throttling tiers unknown to known_tiers (when given).
    """
    text = path_or_json.strip()
    source = "inline JSON"
    if not text.startswith(("[", "{")):
        path = Path(text).expanduser()
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ChannelProfilesConfigError(
                source, [f"cannot read the file: {exc.strerror or exc}"]
            ) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ChannelProfilesConfigError(source, [f"not valid JSON: {exc}"]) from exc
    if not isinstance(document, list):
        raise ChannelProfilesConfigError(
            source, ["expected a JSON array of channel profiles, e.g. [{...}, {...}]"]
        )

    profiles: list[ChannelProfile] = []
    problems: list[str] = []
    positions: dict[str, list[int]] = {}
    for position, item in enumerate(document, start=1):
        label = f"profile #{position}"
        if isinstance(item, dict) and isinstance(item.get("channel"), str):
            label += f" (channel {item['channel']!r})"
        try:
            profile = ChannelProfile.model_validate(item)
        except ValidationError as exc:
            problems.append(f"{label}: " + "; ".join(validation_messages(exc)))
            continue
        violations = profile_rule_violations(profile, known_tiers)
        if violations:
            problems.append(f"{label}: " + "; ".join(f"{f}: {m}" for f, m in violations))
            continue
        positions.setdefault(profile.channel, []).append(position)
        profiles.append(profile)
    for channel, found_at in positions.items():
        if len(found_at) > 1:
            problems.append(
                f"channel {channel!r} is defined {len(found_at)} times "
                f"(profiles #{', #'.join(str(p) for p in found_at)})"
            )
    if problems:
        raise ChannelProfilesConfigError(source, problems)
    return profiles
