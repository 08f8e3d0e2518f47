"""Errors of channel profiles, and pydantic's messages put in words a person can act on."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pydantic import ValidationError

from contracts.channel import ChannelProfile
from gateway_infra.problems import VALIDATION_ERROR, ProblemError, ProblemType

VERSION_CONFLICT = ProblemType(
    "channel-profile-version-conflict",
    "The channel profile has another version than expected",
    409,
)
PRECONDITION_FAILED = ProblemType(
    "precondition-failed", "If-Match does not match the current version of the resource", 412
)


def validation_messages(error: ValidationError) -> list[str]:
    """One 'field.path: message' line per error pydantic found."""
    return [
        f"{'.'.join(str(part) for part in item['loc']) or '(profile)'}: {item['msg']}"
        for item in error.errors(include_url=False)
    ]


def profile_rule_violations(
    profile: ChannelProfile, known_tiers: Collection[str] | None
) -> list[tuple[str, str]]:
    """(field, message) for each rule a valid profile breaks against this gateway's settings."""
    if known_tiers is not None and profile.throttling_tier not in known_tiers:
        return [
            (
                "throttling_tier",
                f"unknown throttling tier {profile.throttling_tier!r} "
                f"(settings.throttle_tiers has {', '.join(sorted(known_tiers))})",
            )
        ]
    return []


class ChannelProfileVersionConflict(ProblemError):
    """The caller expected another version of the profile (optimistic concurrency)."""

    def __init__(self, channel: str, *, expected: int, current: int | None) -> None:
        detail = (
            f"channel profile {channel!r} does not exist (expected version {expected})"
            if current is None
            else f"channel profile {channel!r} is at version {current}, not {expected}"
        )
        super().__init__(
            VERSION_CONFLICT,
            detail,
            channel=channel,
            expected_version=expected,
            current_version=current,
        )
        self.channel = channel
        self.expected = expected
        self.current = current


class ChannelProfileRejected(ProblemError):
    """A schema-valid profile that breaks a rule of this gateway (e.g. an unknown tier)."""

    def __init__(self, channel: str, violations: Sequence[tuple[str, str]]) -> None:
        super().__init__(
            VALIDATION_ERROR,
            f"channel profile {channel!r}: " + "; ".join(message for _, message in violations),
            errors=[{"pointer": f"#/{field}", "detail": message} for field, message in violations],
        )
        self.violations = list(violations)


class StoredProfileInvalid(RuntimeError):
    """Rows of proc_channel_profiles that no longer validate as a ChannelProfile.

    Raised on load, never answered as a client error: the stored data is wrong, not the request.
    PUT /process/v1/channels/{channel} replaces such a row (put reads it without validating).
    """

    def __init__(self, problems: Mapping[str, Sequence[str]]) -> None:
        self.problems = {channel: list(messages) for channel, messages in problems.items()}
        self.channels = sorted(self.problems)
        described = "; ".join(
            f"{channel!r}: {', '.join(self.problems[channel])}" for channel in self.channels
        )
        super().__init__(
            f"stored channel profile(s) no longer valid (replace them through "
            f"PUT /process/v1/channels/{{channel}}, or fix proc_channel_profiles): {described}"
        )


class ChannelProfilesNotLoaded(RuntimeError):
    """snapshot() was asked before any profile was loaded in this process."""

    def __init__(self) -> None:
        super().__init__(
            "channel profiles are not loaded in this process yet: await ChannelProfiles.seed(), "
            "list() or refresh() at start-up, or read them with profiles_in(conn)"
        )
