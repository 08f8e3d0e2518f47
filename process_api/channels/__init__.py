"""Channel profiles: one validated ChannelProfile per channel, read by every workflow that differs
between channels, changed through the process API (versioned, audited) or seeded from settings."""

from process_api.channels.config import ChannelProfilesConfigError, load_profiles_config
from process_api.channels.errors import (
    ChannelProfileRejected,
    ChannelProfilesNotLoaded,
    ChannelProfileVersionConflict,
    StoredProfileInvalid,
)
from process_api.channels.repository import StoredProfile
from process_api.channels.service import ChannelProfiles, SavedProfile, SeedResult

__all__ = [
    "ChannelProfileRejected",
    "ChannelProfileVersionConflict",
    "ChannelProfiles",
    "ChannelProfilesConfigError",
    "ChannelProfilesNotLoaded",
    "SavedProfile",
    "SeedResult",
    "StoredProfile",
    "StoredProfileInvalid",
    "load_profiles_config",
]
