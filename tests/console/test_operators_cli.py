"""`retail-gateway operators add|list|disable`, as an administrator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway import cmd_operators, parser
from gateway_infra.database import Database
from gateway_infra.settings import Settings
from process_api.tables import audit_log, operators
from tests.conftest import migrated_sqlite


def _cli(capsys: pytest.CaptureFixture[str], *args: str, database_url: str) -> tuple[int, str, str]:
    """The command's own handler in this process (a subprocess per call costs seconds)."""
    parsed = parser().parse_args(["operators", *args])
    code = cmd_operators(parsed, Settings(database_url=database_url))
    out, err = capsys.readouterr()
    return code, out, err


def test_operators_are_added_with_a_hashed_password_listed_and_disabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = migrated_sqlite(tmp_path / "ops.db")

    monkeypatch.setenv("GATEWAY_OPERATOR_PASSWORD", "a long enough secret")
    added = _cli(
        capsys, "add", "alice", "--name", "Alice Ops", "--password-env", "--json", database_url=url
    )
    again = _cli(capsys, "add", "alice", "--password-env", database_url=url)
    monkeypatch.setenv("GATEWAY_OPERATOR_PASSWORD", "short")
    short = _cli(capsys, "add", "bob", "--password-env", database_url=url)
    disabled = _cli(capsys, "disable", "alice", "--json", database_url=url)
    listed = _cli(capsys, "list", "--json", database_url=url)

    assert added[0] == 0, added[2]
    assert json.loads(added[1])["display_name"] == "Alice Ops"
    assert again[0] == 2
    assert "exists already" in again[2]
    assert short[0] == 2
    assert "at least 12 characters" in short[2]
    assert disabled[0] == 0, disabled[2]
    [alice] = json.loads(listed[1])["operators"]
    assert (alice["username"], alice["active"]) == ("alice", False)
    database = Database(url)
    try:
        stored = database.run_read(
            lambda conn: conn.execute(select(operators.c.password_hash)).scalar_one()
        )
        audited = database.run_read(
            lambda conn: list(
                conn.execute(select(audit_log.c.actor, audit_log.c.action).order_by(audit_log.c.id))
            )
        )
    finally:
        database.dispose()
    assert stored.startswith("$argon2id$")
    assert "a long enough secret" not in stored
    assert [tuple(row) for row in audited] == [
        ("command-line", "operator.added"),
        ("command-line", "operator.disabled"),
    ]
