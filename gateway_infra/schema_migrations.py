"""Schema migrations (Alembic) of the gateway's store: apply them, tell whether they are current."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

from gateway_infra.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(metadata: Sequence[MetaData] | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if metadata is not None:
        config.attributes["target_metadata"] = list(metadata)
    return config


def upgrade(database: Database, revision: str = "heads") -> None:
    """Apply migrations up to revision (all by default, on every branch: features developed
    side by side may each add a migration after the same parent until a merge joins them)."""
    config = alembic_config()
    with database.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def make_revision(database: Database, metadata: Sequence[MetaData], message: str) -> None:
    """Write a new migration from the difference between the tables and the database."""
    config = alembic_config(metadata)
    with database.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.revision(config, message=message, autogenerate=True)


@dataclass(frozen=True)
class MigrationState:
    current: tuple[str, ...]
    head: tuple[str, ...]

    @property
    def is_current(self) -> bool:
        return set(self.current) == set(self.head)


def migration_state(database: Database) -> MigrationState:
    """The revisions applied to the database and the newest ones this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_heads()
    with database.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_heads()
    return MigrationState(current=tuple(current), head=tuple(head))


def head_revisions() -> tuple[str, ...]:
    """The newest revisions this code knows (what `migrate` brings a database to)."""
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())
