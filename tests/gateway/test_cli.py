"""The retail-gateway command line: migrate, seed-demo and serve, as scripts use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from alembic.script import ScriptDirectory

from gateway_infra.database import Database
from gateway_infra.schema_migrations import alembic_config, upgrade
from tests.conftest import free_port


def _cli(*args: str, database_url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "GATEWAY_LOG_LEVEL": "WARNING"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_migrate_and_seed_demo_print_json_for_scripts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    migrated = _cli("migrate", "--json", database_url=url)
    seeded = _cli("seed-demo", "--json", database_url=url)
    seeded_again = _cli("seed-demo", "--json", database_url=url)

    assert migrated.returncode == 0, migrated.stderr
    assert json.loads(migrated.stdout)["head"] == list(
        ScriptDirectory.from_config(alembic_config()).get_heads()
    )
    assert seeded.returncode == 0, seeded.stderr
    assert "MUG-RED-350" in json.loads(seeded.stdout)["products"]
    assert json.loads(seeded_again.stdout) == json.loads(seeded.stdout)


def test_serve_refuses_to_start_on_an_unmigrated_database(tmp_path: Path) -> None:
    result = _cli(
        "serve", "--port", str(free_port()), database_url=f"sqlite:///{tmp_path / 'new.db'}"
    )

    assert result.returncode == 2
    assert "not migrated" in result.stderr


def test_served_gateway_answers_health_and_readiness(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    assert _cli("migrate", database_url=url).returncode == 0
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "GATEWAY_LOG_LEVEL": "WARNING"}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            health = _wait_for(f"http://127.0.0.1:{port}/healthz", server, log_path)
            ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        finally:
            server.terminate()
            server.wait(timeout=10)

    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["checks"]["migrations"]["status"] == "ok"


def _wait_for(url: str, server: subprocess.Popen[bytes], log_path: Path) -> httpx.Response:
    deadline = time.monotonic() + 90  # start-up on a loaded host (see GatewayProcess)
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {log_path.read_text()}")
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within 90 s")


def test_clients_and_keys_are_managed_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'clients.db'}"
    assert _cli("migrate", database_url=url).returncode == 0

    added = _cli(
        "clients", "add", "Acme", "--kind", "partner", "--channel", "acme",
        "--scopes", "orders:read,orders:write", "--json", database_url=url,
    )  # fmt: skip
    client = json.loads(added.stdout)
    rotated = json.loads(
        _cli("clients", "rotate-secret", client["client_id"], "--json", database_url=url).stdout
    )
    disabled = _cli("clients", "disable", client["client_id"], "--json", database_url=url)
    listed = json.loads(_cli("clients", "list", "--json", database_url=url).stdout)
    keys = json.loads(_cli("keys", "rotate", "--json", database_url=url).stdout)
    refused = _cli(
        "clients", "add", "Bad", "--kind", "partner", "--scopes", "orders:read", database_url=url
    )

    assert client["scopes"] == ["orders:read", "orders:write"]
    assert len(client["client_secret"]) >= 43  # 256 random bits, base64url
    assert rotated["client_secret"] != client["client_secret"]
    assert json.loads(disabled.stdout)["status"] == "disabled"
    assert listed["clients"] == [
        {**{k: v for k, v in client.items() if k != "client_secret"}, "active": False}
    ]
    assert set(keys) == {"retired", "current", "next"}
    assert refused.returncode == 2
    assert "channel" in refused.stderr


def test_serve_refuses_to_start_on_a_database_behind_the_code(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    database = Database(url)
    try:
        upgrade(database, "0009")
    finally:
        database.dispose()

    result = _cli("serve", "--port", str(free_port()), database_url=url)

    assert result.returncode == 2
    assert "not migrated" in result.stderr
    assert "0009" in result.stderr
