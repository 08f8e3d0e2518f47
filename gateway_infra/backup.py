"""Backup and restore of the embedded SQLite store, while the gateway runs (SQLite's online backup).

A backup is one self-contained SQLite file (rollback journal, no WAL beside it), checked with
`PRAGMA integrity_check` before it is put in place. When the key-encryption secret is the file the
gateway keeps beside the database (no GATEWAY_KEY_ENCRYPTION_KEY configured), it is copied beside
the backup as `<backup>.key-encryption.secret`: without it the signing keys and webhook secrets
in the backup could not be read. PostgreSQL is backed up with its own tools (pg_dump, pg_restore;
docs/deployment.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway_infra.database import Database

KEY_FILE = "key-encryption.secret"
"""The name load_secret_box gives the secret it keeps beside an embedded SQLite database."""
BUSY_TIMEOUT_SECONDS = 30.0
PAGES_PER_STEP = 1024
"""Pages copied per step of the online backup: writers may commit between steps."""


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class BackupResult:
    database: Path
    backup: Path
    revisions: tuple[str, ...]
    key_file: Path | None


def sqlite_path(database: Database, action: str) -> Path:
    """The database file, or a BackupError explaining why `action` does not apply to it."""
    if not database.is_sqlite:
        raise BackupError(
            f"{action} works on the embedded SQLite store only; back up PostgreSQL with "
            "pg_dump --format=custom and restore it with pg_restore (docs/deployment.md)"
        )
    if database.is_memory:
        raise BackupError(f"an in-memory SQLite database has nothing to {action}")
    assert database.url.database is not None
    return Path(database.url.database).resolve()


def key_file_beside(path: Path) -> Path:
    return path.parent / KEY_FILE


def key_file_of_backup(backup: Path) -> Path:
    return backup.with_name(f"{backup.name}.{KEY_FILE}")


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
    uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    try:
        yield conn
    finally:
        conn.close()


def _check(conn: sqlite3.Connection, what: str) -> tuple[str, ...]:
    """Integrity of a backup file and the migrations it was at; BackupError when unusable."""
    try:
        verdict = conn.execute("PRAGMA integrity_check").fetchone()
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{what} is not a readable SQLite database: {exc}") from exc
    if verdict is None or verdict[0] != "ok":
        raise BackupError(f"{what} failed its integrity check: {verdict}")
    if "alembic_version" not in tables:
        raise BackupError(f"{what} is not a gateway database (no migrations recorded)")
    return tuple(row[0] for row in conn.execute("SELECT version_num FROM alembic_version"))


def backup(database: Database, target: Path) -> BackupResult:
    """Copy the live database to `target` (replacing it), consistent at one commit."""
    source = sqlite_path(database, "backup")
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    target = target.resolve()
    if target == source:
        raise BackupError("the backup must not be the database itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.partial")
    partial.unlink(missing_ok=True)
    with _connect(source, read_only=True) as src, _connect(partial, read_only=False) as dst:
        src.backup(dst, pages=PAGES_PER_STEP)
        # One file that stands alone: no -wal or -shm beside the copy.
        dst.execute("PRAGMA journal_mode=DELETE")
        revisions = _check(dst, "the backup")
    os.replace(partial, target)
    key_file = None
    if key_file_beside(source).exists():
        key_file = key_file_of_backup(target)
        _copy_secret(key_file_beside(source), key_file)
    return BackupResult(source, target, revisions, key_file)


def restore(database: Database, backup_file: Path, *, replace: bool = False) -> BackupResult:
    """Put a backup in place of the database; the gateway must not be running on it."""
    target = sqlite_path(database, "restore")
    backup_file = backup_file.resolve()
    if not backup_file.is_file():
        raise BackupError(f"there is no backup at {backup_file}")
    if target.exists() and target.stat().st_size > 0 and not replace:
        raise BackupError(
            f"{target} exists; stop every gateway process on it and pass --replace to "
            "overwrite it with the backup"
        )
    with _connect(backup_file, read_only=True) as src:
        revisions = _check(src, f"the backup {backup_file}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with _connect(target, read_only=False) as dst:
            src.backup(dst, pages=PAGES_PER_STEP)
    key_file = None
    saved_key = key_file_of_backup(backup_file)
    if saved_key.exists():
        key_file = key_file_beside(target)
        _copy_secret(saved_key, key_file)
    return BackupResult(target, backup_file, revisions, key_file)


def _copy_secret(source: Path, target: Path) -> None:
    partial = target.with_name(f"{target.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out, source.open("rb") as src:
        shutil.copyfileobj(src, out)
    os.replace(partial, target)
