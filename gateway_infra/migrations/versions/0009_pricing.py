"""price books: versions, entries, promotions, scheduled publications; published versions immutable

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-28 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway_infra.columns

revision: str = "0009"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

IMMUTABLE = "a published price book version is immutable; create a new version instead"
# Tables whose rows belong to one version (book_id, version): none may change once it is published.
VERSION_CONTENT = ("proc_price_entries", "proc_price_promotions")
DONE = "v.status = 'published'"


def upgrade() -> None:
    op.create_table(
        "proc_price_books",
        sa.Column("book_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("created_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("book_id", name=op.f("pk_proc_price_books")),
        sa.UniqueConstraint("channel", "currency", name="uq_proc_price_books_channel_currency"),
    )
    op.create_table(
        "proc_price_publications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("book_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("change", sa.String(length=24), nullable=False),
        sa.Column("promotion_id", sa.String(length=128), nullable=True),
        sa.Column("effective_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("due_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True),
        sa.Column("confirmed_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proc_price_publications")),
    )
    with op.batch_alter_table("proc_price_publications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_proc_price_publications_channel_state", ["channel", "state", "sku"], unique=False
        )
        batch_op.create_index(
            "ix_proc_price_publications_promotion",
            ["book_id", "sku", "promotion_id"],
            unique=False,
        )

    op.create_table(
        "proc_price_book_versions",
        sa.Column("book_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("draft_key", sa.String(length=40), nullable=True),
        sa.Column("based_on", sa.Integer(), nullable=True),
        sa.Column("created_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("published_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True),
        sa.Column("published_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "(status = 'draft' AND draft_key IS NOT NULL AND published_at IS NULL)"
            " OR (status = 'published' AND draft_key IS NULL AND published_at IS NOT NULL)",
            name=op.f("ck_proc_price_book_versions_draft_or_published"),
        ),
        sa.ForeignKeyConstraint(
            ["book_id"],
            ["proc_price_books.book_id"],
            name=op.f("fk_proc_price_book_versions_book_id_proc_price_books"),
        ),
        sa.PrimaryKeyConstraint("book_id", "version", name=op.f("pk_proc_price_book_versions")),
        sa.UniqueConstraint("draft_key", name="uq_proc_price_book_versions_draft_key"),
    )
    op.create_table(
        "proc_price_entries",
        sa.Column("book_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column(
            "base_price", gateway_infra.columns.MoneyAmount(precision=18, scale=4), nullable=False
        ),
        sa.Column(
            "base_price_read_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False
        ),
        sa.Column(
            "floor_price", gateway_infra.columns.MoneyAmount(precision=18, scale=4), nullable=True
        ),
        sa.Column(
            "unit_cost", gateway_infra.columns.MoneyAmount(precision=18, scale=4), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["book_id", "version"],
            ["proc_price_book_versions.book_id", "proc_price_book_versions.version"],
            name="fk_proc_price_entries_version",
        ),
        sa.PrimaryKeyConstraint("book_id", "version", "sku", name=op.f("pk_proc_price_entries")),
    )
    op.create_table(
        "proc_price_promotions",
        sa.Column("book_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("promotion_id", sa.String(length=128), nullable=False),
        sa.Column(
            "price", gateway_infra.columns.MoneyAmount(precision=18, scale=4), nullable=False
        ),
        sa.Column("starts_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "ends_at > starts_at", name=op.f("ck_proc_price_promotions_window_not_empty")
        ),
        sa.ForeignKeyConstraint(
            ["book_id", "version", "sku"],
            ["proc_price_entries.book_id", "proc_price_entries.version", "proc_price_entries.sku"],
            name="fk_proc_price_promotions_entry",
        ),
        sa.PrimaryKeyConstraint(
            "book_id", "version", "sku", "promotion_id", name=op.f("pk_proc_price_promotions")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        _postgresql_triggers()
    else:
        _sqlite_triggers()


def _sqlite_triggers() -> None:
    """RAISE(ABORT) is a constraint failure: the statement and its transaction are refused."""
    refuse = f"BEGIN SELECT RAISE(ABORT, '{IMMUTABLE}'); END"
    op.execute(
        "CREATE TRIGGER trg_proc_price_book_versions_immutable_update "
        "BEFORE UPDATE ON proc_price_book_versions "
        f"WHEN OLD.status = 'published' {refuse}"
    )
    op.execute(
        "CREATE TRIGGER trg_proc_price_book_versions_immutable_delete "
        "BEFORE DELETE ON proc_price_book_versions "
        f"WHEN OLD.status = 'published' {refuse}"
    )

    def published(row: str) -> str:
        condition = f"v.book_id = {row}.book_id AND v.version = {row}.version"
        return f"EXISTS (SELECT 1 FROM proc_price_book_versions v WHERE {condition} AND {DONE})"  # noqa: S608 - constant SQL

    for table in VERSION_CONTENT:
        op.execute(
            f"CREATE TRIGGER trg_{table}_immutable_insert BEFORE INSERT ON {table} "
            f"WHEN {published('NEW')} {refuse}"
        )
        op.execute(
            f"CREATE TRIGGER trg_{table}_immutable_update BEFORE UPDATE ON {table} "
            f"WHEN {published('OLD')} OR {published('NEW')} {refuse}"
        )
        op.execute(
            f"CREATE TRIGGER trg_{table}_immutable_delete BEFORE DELETE ON {table} "
            f"WHEN {published('OLD')} {refuse}"
        )


def _postgresql_triggers() -> None:
    """ERRCODE restrict_violation (23001): drivers report an integrity error, as on SQLite."""
    op.execute(
        f"""
        CREATE FUNCTION proc_price_version_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF OLD.status = 'published' THEN
                RAISE EXCEPTION '{IMMUTABLE}' USING ERRCODE = 'restrict_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN
                RETURN OLD;
            END IF;
            RETURN NEW;
        END;
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER trg_proc_price_book_versions_immutable "
        "BEFORE UPDATE OR DELETE ON proc_price_book_versions "
        "FOR EACH ROW EXECUTE FUNCTION proc_price_version_immutable()"
    )
    op.execute(
        f"""
        CREATE FUNCTION proc_price_content_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('UPDATE', 'DELETE') THEN
                IF EXISTS (
                    SELECT 1 FROM proc_price_book_versions v
                    WHERE v.book_id = OLD.book_id AND v.version = OLD.version
                      AND v.status = 'published'
                ) THEN
                    RAISE EXCEPTION '{IMMUTABLE}' USING ERRCODE = 'restrict_violation';
                END IF;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN
                IF EXISTS (
                    SELECT 1 FROM proc_price_book_versions v
                    WHERE v.book_id = NEW.book_id AND v.version = NEW.version
                      AND v.status = 'published'
                ) THEN
                    RAISE EXCEPTION '{IMMUTABLE}' USING ERRCODE = 'restrict_violation';
                END IF;
                RETURN NEW;
            END IF;
            RETURN OLD;
        END;
        $$
        """  # noqa: S608 - constant SQL, no input
    )
    for table in VERSION_CONTENT:
        op.execute(
            f"CREATE TRIGGER trg_{table}_immutable "
            f"BEFORE INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION proc_price_content_immutable()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in VERSION_CONTENT:
            op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_immutable ON {table}")
        op.execute(
            "DROP TRIGGER IF EXISTS trg_proc_price_book_versions_immutable "
            "ON proc_price_book_versions"
        )
        op.execute("DROP FUNCTION IF EXISTS proc_price_content_immutable()")
        op.execute("DROP FUNCTION IF EXISTS proc_price_version_immutable()")
    else:
        for table in VERSION_CONTENT:
            for operation in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS trg_{table}_immutable_{operation}")
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_proc_price_book_versions_immutable_{operation}")
    op.drop_table("proc_price_promotions")
    op.drop_table("proc_price_entries")
    op.drop_table("proc_price_book_versions")
    with op.batch_alter_table("proc_price_publications", schema=None) as batch_op:
        batch_op.drop_index("ix_proc_price_publications_promotion")
        batch_op.drop_index("ix_proc_price_publications_channel_state")

    op.drop_table("proc_price_publications")
    op.drop_table("proc_price_books")
