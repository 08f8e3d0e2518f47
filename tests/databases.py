"""Migrated databases for tests, without migrating one from scratch for every test.

Running the migrations costs about 0.3 s on SQLite, and about 0.9 s on PostgreSQL, half of it in
the server: every table and index is a file it creates and syncs. So each test process migrates
once, and every test gets a database equal to a freshly migrated one
(tests/gateway/test_provisioned_databases.py compares them):

- SQLite: a copy of one migrated template file. Closing its last connection moved SQLite's WAL
  into the file and removed it, so the file alone is the whole database.
- PostgreSQL: a schema `t_<hex>` in a database the test process creates for itself and drops at
  the end of the session. A schema is migrated when none is free; after a test, it is reset and
  handed to the next test under a new name. If its catalog no longer matches the template
  schema's (the test changed the schema), it is dropped instead. Otherwise the rows the test left
  are deleted, the template's rows (what the migrations inserted) copied back, the sequences set
  back, VACUUM truncates the emptied tables to no pages, and the planner's figures (pg_class,
  pg_statistic) and autovacuum's counters are set back to the template's: queries are planned as
  on a fresh schema. Only the emptied pages of indexes remain. Deleting past the triggers that
  guard published price books and resetting those figures need a superuser, which the
  TEST_DATABASE_URL of the README is.

A test process stays connected to its database for as long as it runs. A later run drops the
test databases nobody is connected to (a run killed before its end), whichever host, container
or TEST_DATABASE_URL they came from. The moment between creating a database and connecting to it
is covered by a session advisory lock named after the database, taken before it is created and
held until the end (advisory locks are per database, so this covers runs on the same
TEST_DATABASE_URL).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from gateway_infra import schema_migrations
from gateway_infra.database import Database, normalise_url


def migrate(url: str) -> None:
    """Run every migration on the database at url, as `retail-gateway migrate` does."""
    database = Database(url)
    try:
        schema_migrations.upgrade(database)
    finally:
        database.dispose()


class Unavailable(Exception):
    """The PostgreSQL server cannot give the tests their databases."""


# ---------------------------------------------------------------- SQLite


class SqliteTemplate:
    """One migrated SQLite file per test process, copied for each test."""

    def __init__(self) -> None:
        self._directory: Path | None = None

    def copy_to(self, path: Path) -> str:
        """A migrated database at path, which must not exist yet; its URL."""
        template = self._template()
        path.parent.mkdir(parents=True, exist_ok=True)
        with template.open("rb") as source, path.open("xb") as copy:
            shutil.copyfileobj(source, copy)
        return f"sqlite:///{path}"

    def _template(self) -> Path:
        if self._directory is None:
            directory = Path(tempfile.mkdtemp(prefix="gateway-tests-"))
            migrate(f"sqlite:///{directory / 'gateway.db'}")
            self._directory = directory
        template = self._directory / "gateway.db"
        wal = template.with_name(f"{template.name}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise RuntimeError(f"{template} has a write-ahead log: a copy would miss it")
        return template

    def close(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


# ---------------------------------------------------------------- PostgreSQL

DATABASE_PREFIX = "gateway_tests_"

# What a schema is made of, with the schema's name left out: equal for equal schemas.
_CATALOG = """
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = :schema),
rels AS (
    SELECT c.oid, c.relname, c.relkind FROM pg_class c JOIN ns ON c.relnamespace = ns.oid
),
lines AS (
    SELECT format('rel %s %s %s %s %s %s', c.relname, c.relkind, c.relpersistence,
                  c.reloptions, c.relacl, c.relowner::regrole)
      FROM pg_class c JOIN rels r ON r.oid = c.oid
    UNION ALL
    SELECT format('col %s %s %s %s %s %s %s %s %s %s', r.relname, a.attnum, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attisdropped,
                  a.attidentity, a.attgenerated, a.attcollation,
                  pg_get_expr(d.adbin, d.adrelid))
      FROM pg_attribute a JOIN rels r ON r.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attnum > 0
    UNION ALL
    SELECT format('con %s %s %s', r.relname, k.conname, pg_get_constraintdef(k.oid))
      FROM pg_constraint k JOIN rels r ON r.oid = k.conrelid
    UNION ALL
    SELECT format('idx %s', pg_get_indexdef(i.indexrelid))
      FROM pg_index i JOIN rels r ON r.oid = i.indrelid
    UNION ALL
    SELECT format('trg %s %s', pg_get_triggerdef(t.oid), t.tgenabled)
      FROM pg_trigger t JOIN rels r ON r.oid = t.tgrelid
     WHERE NOT t.tgisinternal
    UNION ALL
    SELECT format('rule %s', pg_get_ruledef(w.oid))
      FROM pg_rewrite w JOIN rels r ON r.oid = w.ev_class
    UNION ALL
    SELECT format('policy %s %s %s', r.relname, p.polname, pg_get_expr(p.polqual, p.polrelid))
      FROM pg_policy p JOIN rels r ON r.oid = p.polrelid
    UNION ALL
    SELECT format('seq %s %s %s %s %s %s %s %s', r.relname, s.seqtypid::regtype, s.seqstart,
                  s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)
      FROM pg_sequence s JOIN rels r ON r.oid = s.seqrelid
    UNION ALL
    SELECT format('owned %s %s %s %s', r.relname, o.relname, d.refobjsubid, d.deptype)
      FROM pg_depend d JOIN rels r ON r.oid = d.objid JOIN rels o ON o.oid = d.refobjid
     WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
       AND r.relkind = 'S'
    UNION ALL
    SELECT format('fn %s %s', p.prokind,
                  CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid)
                       ELSE p.proname::text END)
      FROM pg_proc p JOIN ns ON p.pronamespace = ns.oid
    UNION ALL
    SELECT format('type %s %s %s', t.typname, t.typtype,
                  (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                     FROM pg_enum e WHERE e.enumtypid = t.oid))
      FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
    UNION ALL
    SELECT format('comment %s %s %s', r.relname, d.objsubid, d.description)
      FROM pg_description d JOIN rels r ON r.oid = d.objoid
     WHERE d.classoid = 'pg_class'::regclass
)
SELECT md5(replace(string_agg(format, E'\\n' ORDER BY format), :schema || '.', '.'))
  FROM lines
"""


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresSchemas:
    """Schemas for tests in a database of this test process (see the module's docstring)."""

    def __init__(self, base_url: str) -> None:
        self.database = f"{DATABASE_PREFIX}{_host()}_{os.getpid()}_{uuid.uuid4().hex[:12]}"
        # Databases are created and dropped from the database TEST_DATABASE_URL names.
        self._server = create_engine(
            normalise_url(base_url), isolation_level="AUTOCOMMIT", poolclass=NullPool
        )
        try:
            with self._server.connect() as conn:
                superuser = conn.execute(
                    text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
                ).scalar()
                if not superuser:
                    raise Unavailable(
                        "TEST_DATABASE_URL must name a PostgreSQL superuser: the tests create a "
                        "database per test process and reset its schemas between tests"
                    )
            # Both held until close(): while they are, no other run takes this database for
            # abandoned.
            self._owner = self._server.connect()
            self._owner.execute(_LOCK, {"name": self.database})
            _drop_abandoned_databases(self._owner)
            self._owner.exec_driver_sql(f"CREATE DATABASE {_quoted(self.database)}")
            self.url = (
                make_url(base_url).set(database=self.database).render_as_string(hide_password=False)
            )
            self._presence = create_engine(normalise_url(self.url), poolclass=NullPool).connect()
        except Unavailable:
            self._close_owner()
            raise
        except Exception as exc:  # any connection failure means no usable server
            self._close_owner()
            raise Unavailable(f"PostgreSQL at TEST_DATABASE_URL is not reachable: {exc}") from exc
        self._engine = create_engine(normalise_url(self.url), pool_size=1, max_overflow=2)
        self._free: list[str] = []
        # Never handed out: what a reset schema is compared with and takes its rows from.
        self._template = f"template_{uuid.uuid4().hex[:16]}"
        try:
            self._new_schema(self._template)
            with self._engine.connect() as conn:
                self._template_catalog = self._catalog(conn, self._template)
                self._seeded = self._tables_with_rows(conn, self._template)
        except BaseException:
            self.close()
            raise

    def url_of(self, schema: str) -> str:
        separator = "&" if "?" in self.url else "?"
        return f"{self.url}{separator}options=-csearch_path%3D{schema}"

    @contextlib.contextmanager
    def migrated(self) -> Iterator[str]:
        """A migrated schema, equal to a fresh one, for the duration of a test; its URL."""
        schema = self._free.pop() if self._free else self._new_schema(_schema_name())
        renamed = None
        try:
            yield self.url_of(schema)
            renamed = self._reset(schema)
        finally:
            if renamed is None:
                self._drop(schema)
            else:
                self._free.append(renamed)

    @contextlib.contextmanager
    def empty(self) -> Iterator[str]:
        """A schema without tables, dropped afterwards (for tests of the migrations)."""
        schema = _schema_name()
        with self._engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {_quoted(schema)}")
        try:
            yield self.url_of(schema)
        finally:
            self._drop(schema)

    def close(self) -> None:
        self._engine.dispose()
        self._presence.close()
        self._owner.exec_driver_sql(
            f"DROP DATABASE IF EXISTS {_quoted(self.database)} WITH (FORCE)"
        )
        self._close_owner()

    def _close_owner(self) -> None:
        owner = getattr(self, "_owner", None)
        if owner is not None:
            owner.close()  # ends the session, and with it the lock
        self._server.dispose()

    def _new_schema(self, schema: str) -> str:
        with self._engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {_quoted(schema)}")
        migrate(self.url_of(schema))
        return schema

    def _drop(self, schema: str) -> None:
        with self._engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {_quoted(schema)} CASCADE")

    def _reset(self, schema: str) -> str | None:
        """Reset the schema to the template's state under a new name; None if it cannot be."""
        with self._engine.connect() as conn, conn.begin():
            if self._catalog(conn, schema) != self._template_catalog:
                return None  # the test changed the schema itself
            changed = self._changed_tables(conn, schema)
            # Neither foreign keys nor the triggers guarding published price books apply.
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            for table in changed:
                conn.exec_driver_sql(f"DELETE FROM {_quoted(schema)}.{_quoted(table)}")  # noqa: S608
                if table in self._seeded:
                    conn.exec_driver_sql(
                        f"INSERT INTO {_quoted(schema)}.{_quoted(table)} "  # noqa: S608
                        f"SELECT * FROM {_quoted(self._template)}.{_quoted(table)}"
                    )
            self._reset_sequences(conn, schema)
        if changed:
            names = ", ".join(f"{_quoted(schema)}.{_quoted(table)}" for table in changed)
            with self._engine.connect() as conn:
                autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
                autocommit.exec_driver_sql(f"VACUUM (INDEX_CLEANUP ON, TRUNCATE ON) {names}")
        with self._engine.connect() as conn, conn.begin():
            if changed:
                # Autovacuum writes pg_class rows in place: it must not work on these meanwhile.
                conn.exec_driver_sql(f"LOCK TABLE {names} IN SHARE UPDATE EXCLUSIVE MODE")
                if self._tables_of_another_size(conn, schema):
                    return None  # VACUUM could not free every page (an older transaction runs)
                self._reset_planner_figures(conn, schema, changed)
            renamed = _schema_name()
            conn.exec_driver_sql(f"ALTER SCHEMA {_quoted(schema)} RENAME TO {_quoted(renamed)}")
        return renamed

    @staticmethod
    def _catalog(conn: Connection, schema: str) -> str:
        digest: str = conn.execute(text(_CATALOG), {"schema": schema}).scalar_one()
        return digest

    @staticmethod
    def _tables_with_rows(conn: Connection, schema: str) -> set[str]:
        names = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = :schema"), {"schema": schema}
        ).scalars()
        return {
            name
            for name in list(names)
            if conn.exec_driver_sql(
                f"SELECT EXISTS (SELECT 1 FROM {_quoted(schema)}.{_quoted(name)})"  # noqa: S608
            ).scalar_one()
        }

    def _tables_of_another_size(self, conn: Connection, schema: str) -> set[str]:
        """Tables whose file has more or fewer pages than the template's."""
        return set(
            conn.execute(
                text(
                    "SELECT c.relname FROM pg_class c JOIN pg_class t ON t.relname = c.relname "
                    "WHERE c.relnamespace = CAST(:schema AS regnamespace) "
                    "AND t.relnamespace = CAST(:template AS regnamespace) AND c.relkind = 'r' "
                    "AND pg_relation_size(c.oid) <> pg_relation_size(t.oid)"
                ),
                {"schema": schema, "template": self._template},
            ).scalars()
        )

    def _changed_tables(self, conn: Connection, schema: str) -> list[str]:
        """Tables a test wrote to: another size than the template's, or other rows."""
        changed = self._tables_of_another_size(conn, schema)
        for table in self._seeded - changed:
            if not self._same_rows(conn, schema, table):
                changed.add(table)
        return sorted(changed)

    def _same_rows(self, conn: Connection, schema: str, table: str) -> bool:
        def rows(of: str) -> str:
            return (
                f"(SELECT coalesce(array_agg(r::text ORDER BY r::text), '{{}}') "  # noqa: S608
                f"FROM {_quoted(of)}.{_quoted(table)} r)"
            )

        same: bool = conn.exec_driver_sql(
            f"SELECT {rows(schema)} = {rows(self._template)}"
        ).scalar_one()
        return same

    def _reset_sequences(self, conn: Connection, schema: str) -> None:
        conn.execute(
            text(
                "SELECT setval(format('%I.%I', s.schemaname, s.sequencename), "
                "coalesce(t.last_value, t.start_value), t.last_value IS NOT NULL) "
                "FROM pg_sequences s JOIN pg_sequences t ON t.sequencename = s.sequencename "
                "WHERE s.schemaname = :schema AND t.schemaname = :template "
                "AND s.last_value IS DISTINCT FROM t.last_value"
            ),
            {"schema": schema, "template": self._template},
        )

    def _reset_planner_figures(self, conn: Connection, schema: str, tables: list[str]) -> None:
        """The template's page and row estimates for the tables and their indexes, no
        statistics, and autovacuum's counters at zero: as if no test had written to them."""
        relations = list(
            conn.execute(
                text(
                    "SELECT c.oid FROM pg_class c "
                    "WHERE c.relnamespace = CAST(:schema AS regnamespace) "
                    "AND c.relname = ANY(:tables) "
                    "UNION ALL SELECT i.indexrelid FROM pg_index i "
                    "JOIN pg_class c ON c.oid = i.indrelid "
                    "WHERE c.relnamespace = CAST(:schema AS regnamespace) "
                    "AND c.relname = ANY(:tables)"
                ),
                {"schema": schema, "tables": tables},
            ).scalars()
        )
        params = {"relations": relations, "template": self._template}
        conn.execute(
            text(
                "UPDATE pg_class c SET relpages = t.relpages, reltuples = t.reltuples, "
                "relallvisible = t.relallvisible FROM pg_class t "
                "WHERE c.oid = ANY(:relations) AND t.relname = c.relname "
                "AND t.relnamespace = CAST(:template AS regnamespace) "
                "AND (c.relpages, c.reltuples, c.relallvisible) "
                "IS DISTINCT FROM (t.relpages, t.reltuples, t.relallvisible)"
            ),
            params,
        )
        conn.execute(text("DELETE FROM pg_statistic WHERE starelid = ANY(:relations)"), params)
        conn.execute(
            text("SELECT pg_stat_reset_single_table_counters(r) FROM unnest(:relations) r"),
            params,
        )


def _schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


def _host() -> str:
    """This host, in a few characters of a database name."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


_LOCK = text("SELECT pg_advisory_lock(hashtextextended(:name, 0))")
_TRY_LOCK = text("SELECT pg_try_advisory_lock(hashtextextended(:name, 0))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtextextended(:name, 0))")


_UNATTENDED = text(
    "SELECT d.datname FROM pg_database d WHERE starts_with(d.datname, :prefix)"
    " AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)"
)


def _drop_abandoned_databases(conn: Connection) -> None:
    """Drop the test databases whose process ended without dropping them: nobody is connected to
    them and nobody holds their lock. (Two names that hash alike only keep an abandoned database
    a while longer.)"""
    names = conn.execute(_UNATTENDED, {"prefix": DATABASE_PREFIX}).scalars()
    for name in list(names):
        if not conn.execute(_TRY_LOCK, {"name": name}).scalar():
            continue  # its test process is creating it
        try:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)")
        finally:
            conn.execute(_UNLOCK, {"name": name})
