"""slimmer publication rows: the outbox keeps each event's data, not an envelope that repeated
its columns; its indexes on positions and orders cover only the rows that have one, and the index
on (channel, id) that no query used is gone; on SQLite the published values are one B-tree keyed
by (channel, SKU) (WITHOUT ROWID) instead of a table and the index of its key, and their index of
unconfirmed values is gone

Not additive: replicas of the previous release read and write the envelope column, so stop them
before applying it (docs/decisions/0017-slimmer-publication-rows.md).

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-28 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The envelope as EventEnvelope.model_dump(mode="json") gave it, from the columns: keys in the
# model's order, the instant as pydantic writes an aware UTC datetime (microseconds only when
# there are any). SQLAlchemy keeps SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'.
_SQLITE_INSTANT = (
    "CASE WHEN substr(occurred_at, 20) IN ('', '.000000')"
    " THEN replace(substr(occurred_at, 1, 19), ' ', 'T') || 'Z'"
    " ELSE replace(occurred_at, ' ', 'T') || 'Z' END"
)
_POSTGRES_INSTANT = (
    "to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS')"
    " || CASE WHEN extract(microseconds FROM occurred_at)::bigint % 1000000 = 0 THEN ''"
    " ELSE to_char(occurred_at AT TIME ZONE 'UTC', '.US') END || 'Z'"
)
_FIELDS = (
    "'id', event_id, 'type', type, 'version', version, 'occurred_at', {instant},"
    " 'correlation_id', correlation_id, 'causation_id', causation_id,"
    " 'origin_correlation_id', origin_correlation_id, 'source', source, 'subject', subject,"
    " 'channel', channel, 'data', {data}"
)


def _partial(condition: str) -> dict[str, sa.TextClause]:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def _published(*, slimmer: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "proc_published_availability",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_with_rowid": not slimmer} if sqlite else {},
    ) as batch:
        if slimmer:
            batch.drop_index("ix_proc_published_availability_unconfirmed")
        else:
            batch.create_index(
                "ix_proc_published_availability_unconfirmed",
                ["channel", "confirmed_at"],
                unique=False,
            )


def upgrade() -> None:
    _published(slimmer=True)
    with op.batch_alter_table("infra_outbox") as batch:
        batch.add_column(sa.Column("data", sa.JSON(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE infra_outbox SET data = envelope -> 'data'")
    else:
        op.execute("UPDATE infra_outbox SET data = json_extract(envelope, '$.data')")
    with op.batch_alter_table("infra_outbox") as batch:
        batch.alter_column("data", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("envelope")
        batch.drop_index("ix_infra_outbox_channel_id")
        batch.drop_index("ix_infra_outbox_order_id")
        batch.drop_index("ix_infra_outbox_position")
        batch.drop_index("ix_infra_outbox_channel_position")
        batch.create_index(
            "ix_infra_outbox_order_id",
            ["order_id", "id"],
            unique=False,
            **_partial("order_id IS NOT NULL"),
        )
        batch.create_index(
            "ix_infra_outbox_position",
            ["position"],
            unique=True,
            **_partial("position IS NOT NULL"),
        )
        batch.create_index(
            "ix_infra_outbox_channel_position",
            ["channel", "position"],
            unique=False,
            **_partial("position IS NOT NULL"),
        )


def downgrade() -> None:
    _published(slimmer=False)
    with op.batch_alter_table("infra_outbox") as batch:
        batch.add_column(sa.Column("envelope", sa.JSON(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        fields = _FIELDS.format(instant=_POSTGRES_INSTANT, data="data")
        op.execute(f"UPDATE infra_outbox SET envelope = json_build_object({fields})")  # noqa: S608
    else:
        fields = _FIELDS.format(instant=_SQLITE_INSTANT, data="json(data)")
        op.execute(f"UPDATE infra_outbox SET envelope = json_object({fields})")  # noqa: S608
    with op.batch_alter_table("infra_outbox") as batch:
        batch.alter_column("envelope", existing_type=sa.JSON(), nullable=False)
        batch.drop_column("data")
        batch.drop_index("ix_infra_outbox_channel_position")
        batch.drop_index("ix_infra_outbox_position")
        batch.drop_index("ix_infra_outbox_order_id")
        batch.create_index("ix_infra_outbox_channel_id", ["channel", "id"], unique=False)
        batch.create_index("ix_infra_outbox_order_id", ["order_id", "id"], unique=False)
        batch.create_index("ix_infra_outbox_position", ["position"], unique=True)
        batch.create_index(
            "ix_infra_outbox_channel_position", ["channel", "position"], unique=False
        )
