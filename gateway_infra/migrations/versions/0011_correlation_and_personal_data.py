"""correlation across requests and personal-data purge: events know their order and its origin,
timers keep the correlation id of the work that scheduled them, orders record their purge

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway_infra.columns

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("infra_outbox") as batch:
        batch.add_column(sa.Column("order_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("origin_correlation_id", sa.String(length=128), nullable=True))
        batch.create_index("ix_infra_outbox_order_id", ["order_id", "id"], unique=False)
    with op.batch_alter_table("infra_timers") as batch:
        batch.add_column(sa.Column("correlation_id", sa.String(length=128), nullable=True))
    with op.batch_alter_table("proc_orders") as batch:
        batch.add_column(
            sa.Column(
                "personal_data_purged_at",
                gateway_infra.columns.UtcDateTime(timezone=True),
                nullable=True,
            )
        )
        batch.create_index(
            "ix_proc_orders_status_updated_at", ["status", "updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("proc_orders") as batch:
        batch.drop_index("ix_proc_orders_status_updated_at")
        batch.drop_column("personal_data_purged_at")
    with op.batch_alter_table("infra_timers") as batch:
        batch.drop_column("correlation_id")
    with op.batch_alter_table("infra_outbox") as batch:
        batch.drop_index("ix_infra_outbox_order_id")
        batch.drop_column("origin_correlation_id")
        batch.drop_column("order_id")
