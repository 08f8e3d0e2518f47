"""ops console operators, their sessions and the audit log

Revision ID: 0013
Revises: 0010
Create Date: 2026-11-27 21:09:32.113944
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway_infra.columns

revision: str = "0013"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proc_audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proc_audit_log")),
    )
    with op.batch_alter_table("proc_audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_proc_audit_log_actor", ["actor", "id"], unique=False)
        batch_op.create_index("ix_proc_audit_log_subject", ["subject", "id"], unique=False)

    op.create_table(
        "proc_operators",
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("operator_id", name=op.f("pk_proc_operators")),
        sa.UniqueConstraint("username", name="uq_proc_operators_username"),
    )
    op.create_table(
        "proc_operator_sessions",
        sa.Column("session_digest", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.String(length=40), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["proc_operators.operator_id"],
            name=op.f("fk_proc_operator_sessions_operator_id_proc_operators"),
        ),
        sa.PrimaryKeyConstraint("session_digest", name=op.f("pk_proc_operator_sessions")),
    )
    with op.batch_alter_table("proc_operator_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_proc_operator_sessions_expires_at", ["expires_at"], unique=False)
        batch_op.create_index(
            "ix_proc_operator_sessions_operator_id", ["operator_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("proc_operator_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_proc_operator_sessions_operator_id")
        batch_op.drop_index("ix_proc_operator_sessions_expires_at")

    op.drop_table("proc_operator_sessions")
    op.drop_table("proc_operators")
    with op.batch_alter_table("proc_audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_proc_audit_log_subject")
        batch_op.drop_index("ix_proc_audit_log_actor")

    op.drop_table("proc_audit_log")
