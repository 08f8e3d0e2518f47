"""`retail-gateway backup` / `restore` of the embedded SQLite store, as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from gateway import build_app, cmd_backup, parser
from gateway_infra.auth.clients import ClientKind
from gateway_infra.auth.scopes import PARTNER_SCOPES
from gateway_infra.clock import SystemClock
from gateway_infra.database import Database
from gateway_infra.settings import Settings
from tests.conftest import BASE_URL, fetch_token, make_settings, migrate, start_gateway
from tests.factories import seed_products


def _cli(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DATABASE_URL"
    }
    env.update({"DATABASE_URL": database_url, "GATEWAY_LOG_LEVEL": "WARNING"})
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _run(*args: str, database_url: str, capsys: pytest.CaptureFixture[str]) -> Outcome:
    """The command in this process (what `retail-gateway ARGS` runs, without its start-up)."""
    parsed = parser().parse_args(list(args))
    code = cmd_backup(parsed, Settings(database_url=database_url))
    captured = capsys.readouterr()
    return Outcome(code, captured.out, captured.err)


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def _client_names(url: str) -> set[str]:
    database = Database(url)
    try:
        return set(
            database.run_read(
                lambda conn: conn.execute(text("SELECT name FROM infra_oauth_clients")).scalars()
            )
        )
    finally:
        database.dispose()


async def test_a_backup_taken_while_the_gateway_runs_restores_what_was_committed_before_it(
    tmp_path: Path,
) -> None:
    live_url = f"sqlite:///{tmp_path / 'live' / 'gateway.db'}"
    migrate(live_url)
    # No configured key-encryption key: the gateway keeps its secret beside the database file.
    live = start_gateway(make_settings(live_url, key_encryption_key=None), SystemClock())
    seed_products(live)
    before, secret = live.clients.add(
        name="before backup", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
    )
    backup_file = tmp_path / "backups" / "gateway-backup.db"

    taken = _cli("backup", str(backup_file), "--json", database_url=live_url)
    live.clients.add(
        name="after backup", kind=ClientKind.PARTNER, scopes=PARTNER_SCOPES, channel="webshop"
    )
    await live.aclose()
    restored_url = f"sqlite:///{tmp_path / 'restored' / 'gateway.db'}"
    restored = _cli("restore", str(backup_file), "--json", database_url=restored_url)

    assert taken.returncode == 0, taken.stderr
    assert json.loads(taken.stdout)["at_head"] is True
    assert (tmp_path / "backups" / "gateway-backup.db.key-encryption.secret").read_text() == (
        tmp_path / "live" / "key-encryption.secret"
    ).read_text()
    assert restored.returncode == 0, restored.stderr
    assert json.loads(restored.stdout)["key_file"] == str(
        tmp_path / "restored" / "key-encryption.secret"
    )
    assert _client_names(live_url) >= {"before backup", "after backup"}
    assert "after backup" not in _client_names(restored_url)
    # The restored signing keys decrypt with the restored secret: the client gets a token.
    gateway = start_gateway(make_settings(restored_url, key_encryption_key=None), SystemClock())
    try:
        transport = httpx.ASGITransport(app=build_app(gateway, run_background=False))
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            token = await fetch_token(http, before.client_id, secret)
            read = await http.get(
                "/partner/v2/inventory",
                params={"sku": "MUG-RED-350"},
                headers={"Authorization": f"Bearer {token}"},
            )
    finally:
        await gateway.aclose()
    assert read.status_code == 200, read.text
    assert "MUG-RED-350" in read.text


def test_restore_keeps_an_existing_database_unless_told_to_replace_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'source.db'}"
    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    migrate(source_url)
    migrate(target_url)
    backup_file = tmp_path / "backup.db"
    assert _run("backup", str(backup_file), database_url=source_url, capsys=capsys).returncode == 0

    kept = _run("restore", str(backup_file), database_url=target_url, capsys=capsys)
    replaced = _run(
        "restore", str(backup_file), "--replace", database_url=target_url, capsys=capsys
    )

    assert kept.returncode == 2
    assert "--replace" in kept.stderr
    assert replaced.returncode == 0, replaced.stderr
    assert "restored" in replaced.stdout


def test_restore_refuses_a_file_that_is_not_a_gateway_backup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "notes.db"
    garbage.write_bytes(b"not a database at all" * 100)
    empty_sqlite = tmp_path / "other.db"
    Database(f"sqlite:///{empty_sqlite}").run_write(
        lambda conn: conn.execute(text("CREATE TABLE t (x int)"))
    )
    target_url = f"sqlite:///{tmp_path / 'target.db'}"

    unreadable = _run("restore", str(garbage), database_url=target_url, capsys=capsys)
    foreign = _run("restore", str(empty_sqlite), database_url=target_url, capsys=capsys)
    missing = _run("restore", str(tmp_path / "nowhere.db"), database_url=target_url, capsys=capsys)

    assert unreadable.returncode == 2
    assert "not a readable SQLite database" in unreadable.stderr
    assert foreign.returncode == 2
    assert "not a gateway database" in foreign.stderr
    assert missing.returncode == 2
    assert "no backup" in missing.stderr
    assert not (tmp_path / "target.db").exists() or (tmp_path / "target.db").stat().st_size == 0


def test_backup_and_restore_of_postgresql_point_to_pg_dump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://postgres@127.0.0.1:5432/test"

    backup = _run("backup", str(tmp_path / "pg.db"), database_url=url, capsys=capsys)
    restore = _run("restore", str(tmp_path / "pg.db"), database_url=url, capsys=capsys)

    for result in (backup, restore):
        assert result.returncode == 2
        assert "pg_dump" in result.stderr
    assert not (tmp_path / "pg.db").exists()
