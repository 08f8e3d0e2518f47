"""The committed OpenAPI documents of every app (contracts/openapi/) and the last released ones
(contracts/released/): one canonical rendering, so the files read well in diffs, and the
comparison of what the apps serve now with what is committed.

The documents describe the gateway as configured by its defaults (the token URL comes from the
default `public_base_url`), so the same code exports the same bytes on every machine.
"""

from __future__ import annotations

import difflib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

import contracts
from gateway_infra.settings import Settings

CONTRACTS_DIR = Path(contracts.__file__).resolve().parent
OPENAPI_DIR = CONTRACTS_DIR / "openapi"
RELEASED_DIR = CONTRACTS_DIR / "released"
RELEASED_ON_FILE = "RELEASED_ON"
EXPORT_COMMAND = "retail-gateway contracts export"

Document = dict[str, Any]


class _DefaultSettings(Settings):
    """Settings from the code's defaults only: the environment of the machine plays no part."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def documented_settings() -> Settings:
    """The settings the committed documents describe: every default, on a throwaway store."""
    return _DefaultSettings(
        database_url="sqlite:///:memory:",
        key_encryption_key=secrets.token_urlsafe(48),
    )


def canonical(value: Any, *, keep_order: bool = False) -> Any:
    """Mapping keys sorted, except a schema's `properties` (the model's field order, which is
    how people read a payload); lists keep their order."""
    if isinstance(value, Mapping):
        items = value.items() if keep_order else sorted(value.items())
        return {
            key: canonical(item, keep_order=not keep_order and key == "properties")
            for key, item in items
        }
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


def render(document: Mapping[str, Any]) -> str:
    """The committed text of a document: canonical order, 2-space indent, trailing newline."""
    return json.dumps(canonical(document), indent=2, ensure_ascii=False) + "\n"


def document_path(directory: Path, name: str) -> Path:
    return directory / f"{name}.json"


def load_documents(directory: Path) -> dict[str, Document]:
    """Every `<name>.json` document of a directory, by name."""
    return {
        path.stem: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.json"))
    }


def released_on(directory: Path) -> date | None:
    """The day the documents of a release directory were released (its RELEASED_ON file)."""
    path = directory / RELEASED_ON_FILE
    if not path.exists():
        return None
    return date.fromisoformat(path.read_text(encoding="utf-8").strip())


@dataclass(frozen=True)
class Drift:
    """A committed document that is not what the app serves."""

    name: str
    path: Path
    status: str  # "missing" (not committed), "differs", or "stale" (no app serves it any more)
    diff: str

    def describe(self) -> str:
        heading = {
            "missing": f"{self.name}: {self.path} is not committed",
            "differs": f"{self.name}: {self.path} differs from what the app serves",
            "stale": f"{self.name}: {self.path} is committed but no app serves it",
        }[self.status]
        return heading + (f"\n{self.diff}" if self.diff else "")


def compare(
    documents: Mapping[str, Mapping[str, Any]], directory: Path, *, max_diff_lines: int = 40
) -> list[Drift]:
    """How the committed documents differ from the served ones (empty when they are the same)."""
    drifts: list[Drift] = []
    for name, document in sorted(documents.items()):
        path = document_path(directory, name)
        served = render(document)
        if not path.exists():
            drifts.append(Drift(name, path, "missing", ""))
            continue
        committed = path.read_text(encoding="utf-8")
        if committed != served:
            lines = list(
                difflib.unified_diff(
                    committed.splitlines(),
                    served.splitlines(),
                    fromfile=f"committed {name}.json",
                    tofile=f"served {name}.json",
                    lineterm="",
                    n=2,
                )
            )
            if len(lines) > max_diff_lines:
                lines = [*lines[:max_diff_lines], f"... ({len(lines) - max_diff_lines} more lines)"]
            drifts.append(Drift(name, path, "differs", "\n".join(lines)))
    for path in sorted(directory.glob("*.json")):
        if path.stem not in documents:
            drifts.append(Drift(path.stem, path, "stale", ""))
    return drifts


def write(documents: Mapping[str, Mapping[str, Any]], directory: Path) -> dict[str, str]:
    """Write every document in its committed form; remove those no app serves any more.
    Answers what happened to each: written, unchanged or removed."""
    directory.mkdir(parents=True, exist_ok=True)
    outcome: dict[str, str] = {}
    for name, document in sorted(documents.items()):
        path = document_path(directory, name)
        text = render(document)
        if path.exists() and path.read_text(encoding="utf-8") == text:
            outcome[name] = "unchanged"
            continue
        path.write_text(text, encoding="utf-8")
        outcome[name] = "written"
    for path in sorted(directory.glob("*.json")):
        if path.stem not in documents:
            path.unlink()
            outcome[path.stem] = "removed"
    return outcome
