"""The committed OpenAPI documents (contracts/openapi/) are what the apps serve, valid OpenAPI
3.1, independent of the machine, and free of breaking changes against the last release
(contracts/released/); `retail-gateway contracts export|check` say so to a developer."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from gateway import OPENAPI_DOCUMENTS, document_sunsets, openapi_documents
from gateway_infra.contract_documents import (
    EXPORT_COMMAND,
    OPENAPI_DIR,
    RELEASED_DIR,
    RELEASED_ON_FILE,
    compare,
    documented_settings,
    load_documents,
    released_on,
    render,
)
from gateway_infra.openapi_diff import breaking_changes, format_changes

_SERVED: dict[str, dict[str, Any]] = {}


async def _served() -> dict[str, dict[str, Any]]:
    """What the apps serve now (built once per test session; it takes a few seconds)."""
    if not _SERVED:
        _SERVED.update(await openapi_documents())
    return _SERVED


async def test_the_committed_documents_are_what_the_apps_serve() -> None:
    drifts = compare(await _served(), OPENAPI_DIR)

    if drifts:
        pytest.fail(
            "\n\n".join(drift.describe() for drift in drifts)
            + f"\n\nThe APIs changed: run `{EXPORT_COMMAND}` and commit contracts/openapi/.",
            pytrace=False,
        )


@pytest.mark.parametrize("name", sorted(OPENAPI_DOCUMENTS))
def test_each_committed_document_is_valid_openapi_3_1_in_its_committed_form(name: str) -> None:
    text = (OPENAPI_DIR / f"{name}.json").read_text(encoding="utf-8")
    document = json.loads(text)

    assert document["openapi"].startswith("3.1")
    validate(document)
    assert text == render(document), f"{name}.json is not in canonical form: {EXPORT_COMMAND}"
    assert list(document["paths"]) == sorted(document["paths"])


async def test_the_documents_do_not_depend_on_the_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GATEWAY_PUBLIC_BASE_URL", "https://gateway.example.com")
    monkeypatch.setenv("GATEWAY_IDEMPOTENCY_RETENTION_SECONDS", "3600")
    monkeypatch.setenv("GATEWAY_PORT", "9123")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")

    here = await openapi_documents()

    assert {name: render(d) for name, d in here.items()} == {
        name: render(d) for name, d in (await _served()).items()
    }
    text = "".join(render(d) for d in here.values())
    assert str(tmp_path) not in text
    assert "gateway.example.com" not in text


async def test_no_breaking_change_against_the_last_release() -> None:
    released = load_documents(RELEASED_DIR)
    served = await _served()
    sunsets = document_sunsets(documented_settings())
    today = datetime.now(UTC).date()

    report = {
        name: breaking_changes(
            document, served.get(name), today=today, document_sunset=sunsets.get(name)
        )
        for name, document in sorted(released.items())
    }

    assert set(released) == set(OPENAPI_DOCUMENTS)
    assert released_on(RELEASED_DIR) is not None
    breaking = [format_changes(name, changes) for name, changes in report.items() if changes]
    assert not breaking, "\n".join(breaking) + "\nsee docs/contracts.md"


# ---------------------------------------------------------------- the command line


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "contracts", *args],
        env={**os.environ, "GATEWAY_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_export_check_names_the_drifted_document_and_export_rewrites_it(tmp_path: Path) -> None:
    directory = tmp_path / "openapi"
    first = _cli("export", "--dir", str(directory))
    assert first.returncode == 0, first.stderr
    served = (directory / "partner-v2.json").read_text()
    drifted = directory / "partner-v2.json"
    document = json.loads(drifted.read_text())
    removed_path = sorted(document["paths"])[0]
    del document["paths"][removed_path]
    drifted.write_text(render(document))

    checked = _cli("export", "--check", "--dir", str(directory))
    exported = _cli("export", "--dir", str(directory), "--json")

    assert checked.returncode == 1, checked.stderr
    assert "partner-v2: " in checked.stdout
    assert f'+    "{removed_path}": {{' in checked.stdout
    assert f"run `{EXPORT_COMMAND}`" in checked.stdout
    assert "system:" not in checked.stdout
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["documents"] == {
        "partner-v1": "unchanged",
        "partner-v2": "written",
        "process": "unchanged",
        "system": "unchanged",
    }
    assert drifted.read_text() == served


def _release_fixture(tmp_path: Path) -> tuple[Path, Path]:
    released = tmp_path / "released"
    current = tmp_path / "current"
    shutil.copytree(RELEASED_DIR, released)
    shutil.copytree(RELEASED_DIR, current)
    (current / RELEASED_ON_FILE).unlink()
    return released, current


def _edit(path: Path, change: Any) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(render(document))


def test_contracts_check_fails_on_a_breaking_change_with_a_readable_list(tmp_path: Path) -> None:
    released, current = _release_fixture(tmp_path)
    order_in = json.loads((released / "partner-v2.json").read_text())["components"]["schemas"][
        "V2OrderIn"
    ]
    field = next(iter(order_in["properties"]))

    def breaking(document: dict[str, Any]) -> None:
        del document["components"]["schemas"]["V2OrderIn"]["properties"][field]
        del document["paths"]["/orders"]["get"]

    _edit(current / "partner-v2.json", breaking)

    result = _cli(
        "check", "--released", str(released), "--current", str(current), "--today", "2026-11-27"
    )
    as_json = _cli(
        "check",
        "--released",
        str(released),
        "--current",
        str(current),
        "--today",
        "2026-11-27",
        "--json",
    )

    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "partner-v2: 2 breaking changes" in lines
    assert (
        "  - [removed-operation] GET /orders: operation removed (deprecate it with a sunset date "
        "first)"
    ) in lines
    assert (
        f"  - [removed-field] POST /orders request body (application/json) field `{field}`: "
        "removed or renamed"
    ) in lines
    assert "system: no breaking change" in lines
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert [c["rule"] for c in report["breaking"]["partner-v2"]] == [
        "removed-operation",
        "removed-field",
    ]
    assert report["breaking"]["system"] == []


def test_contracts_check_passes_an_additive_change(tmp_path: Path) -> None:
    released, current = _release_fixture(tmp_path)

    def additive(document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        schemas["V2OrderIn"]["properties"]["gift_message"] = {"type": "string", "maxLength": 200}
        schemas["V2Order"]["properties"]["gift_message"] = {"type": "string"}
        document["paths"]["/gift-cards"] = {
            "get": {"responses": {"200": {"description": "The channel's gift cards."}}}
        }

    _edit(current / "partner-v2.json", additive)

    result = _cli(
        "check", "--released", str(released), "--current", str(current), "--today", "2026-11-27"
    )

    assert result.returncode == 0, result.stdout
    assert "partner-v2: no breaking change" in result.stdout.splitlines()


def test_contracts_check_without_a_release_says_so(tmp_path: Path) -> None:
    result = _cli("check", "--released", str(tmp_path), "--current", str(OPENAPI_DIR))

    assert result.returncode == 2
    assert "no released OpenAPI documents" in result.stderr
