"""event retention: the purge watermark of the events table, and the deliveries index the purge
uses to keep the events of pending and dead deliveries

Revision ID: 0018
Revises: 0015
Create Date: 2026-11-28 01:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway_infra.columns

revision: str = "0018"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "infra_outbox_purges",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("purged_through", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", gateway_infra.columns.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("infra_webhook_deliveries") as batch:
        batch.create_index(
            "ix_infra_webhook_deliveries_event_state", ["event_id", "state"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("infra_webhook_deliveries") as batch:
        batch.drop_index("ix_infra_webhook_deliveries_event_state")
    op.drop_table("infra_outbox_purges")
