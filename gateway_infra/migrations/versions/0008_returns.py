"""returns: the return-to-refund workflow, its lines, history and refunds

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-28 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway_infra.columns

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proc_returns",
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("channel_return_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "value", gateway_infra.columns.MoneyAmount(precision=18, scale=4), nullable=False
        ),
        sa.Column("refusals", sa.JSON(), nullable=False),
        sa.Column("warehouse", sa.String(length=64), nullable=True),
        sa.Column("pending_receipt", sa.JSON(), nullable=True),
        sa.Column("pending_inspection", sa.JSON(), nullable=True),
        sa.Column("receipt_id", sa.String(length=128), nullable=True),
        sa.Column("received_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True),
        sa.Column("inspected_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True),
        sa.Column("channel_refund_id", sa.String(length=128), nullable=True),
        sa.Column(
            "channel_refund_amount",
            gateway_infra.columns.MoneyAmount(precision=18, scale=4),
            nullable=True,
        ),
        sa.Column(
            "channel_refunded_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True
        ),
        sa.Column("origin_correlation_id", sa.String(length=128), nullable=True),
        sa.Column("created_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["proc_orders.order_id"],
            name=op.f("fk_proc_returns_order_id_proc_orders"),
        ),
        sa.PrimaryKeyConstraint("return_id", name=op.f("pk_proc_returns")),
        sa.UniqueConstraint("channel", "channel_return_id", name="uq_proc_returns_channel_return"),
    )
    with op.batch_alter_table("proc_returns", schema=None) as batch_op:
        batch_op.create_index("ix_proc_returns_order_id", ["order_id"], unique=False)
        batch_op.create_index("ix_proc_returns_created_at", ["created_at"], unique=False)

    op.create_table(
        "proc_return_lines",
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("line_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column(
            "unit_price", gateway_infra.columns.MoneyAmount(precision=18, scale=4), nullable=True
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("refund_timing", sa.String(length=24), nullable=True),
        sa.Column("quantity_received", sa.Integer(), nullable=True),
        sa.Column("inspections", sa.JSON(), nullable=True),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_proc_return_lines_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["return_id"],
            ["proc_returns.return_id"],
            name=op.f("fk_proc_return_lines_return_id_proc_returns"),
        ),
        sa.PrimaryKeyConstraint("return_id", "line_id", name=op.f("pk_proc_return_lines")),
    )

    op.create_table(
        "proc_return_history",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("correlation_id", sa.String(length=128), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["return_id"],
            ["proc_returns.return_id"],
            name=op.f("fk_proc_return_history_return_id_proc_returns"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proc_return_history")),
    )
    with op.batch_alter_table("proc_return_history", schema=None) as batch_op:
        batch_op.create_index("ix_proc_return_history_return_id", ["return_id", "id"], unique=False)

    op.create_table(
        "proc_return_refunds",
        sa.Column("refund_id", sa.String(length=64), nullable=False),
        sa.Column("return_id", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column(
            "amount", gateway_infra.columns.MoneyAmount(precision=18, scale=4), nullable=False
        ),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("credit_notes", sa.JSON(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.Column("posted_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["return_id"],
            ["proc_returns.return_id"],
            name=op.f("fk_proc_return_refunds_return_id_proc_returns"),
        ),
        sa.PrimaryKeyConstraint("refund_id", name=op.f("pk_proc_return_refunds")),
        sa.UniqueConstraint("return_id", "kind", name="uq_proc_return_refunds_kind"),
    )
    with op.batch_alter_table("proc_return_refunds", schema=None) as batch_op:
        batch_op.create_index("ix_proc_return_refunds_order_id", ["order_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("proc_return_refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_proc_return_refunds_order_id")

    op.drop_table("proc_return_refunds")
    with op.batch_alter_table("proc_return_history", schema=None) as batch_op:
        batch_op.drop_index("ix_proc_return_history_return_id")

    op.drop_table("proc_return_history")
    op.drop_table("proc_return_lines")
    with op.batch_alter_table("proc_returns", schema=None) as batch_op:
        batch_op.drop_index("ix_proc_returns_created_at")
        batch_op.drop_index("ix_proc_returns_order_id")

    op.drop_table("proc_returns")
