"""Documentation that must match the code."""

from __future__ import annotations

from pathlib import Path

from gateway_infra.settings import settings_reference

ROOT = Path(__file__).resolve().parents[2]


def test_settings_reference_lists_every_setting_as_the_code_defines_it() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text()

    assert committed == settings_reference(), (
        "docs/settings.md is stale: run `retail-gateway settings --markdown > docs/settings.md`"
    )
