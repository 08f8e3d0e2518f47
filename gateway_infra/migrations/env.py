"""Alembic environment: runs on the connection handed over by gateway_infra.migrations."""

from __future__ import annotations

from alembic import context

config = context.config
connection = config.attributes["connection"]
target_metadata = config.attributes.get("target_metadata")

context.configure(
    connection=connection,
    target_metadata=target_metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
