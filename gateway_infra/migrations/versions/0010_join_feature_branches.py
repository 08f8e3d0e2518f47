"""join the webhook delivery, returns and pricing migrations into one head

Revision ID: 0010
Revises: 0007, 0008, 0009
Create Date: 2026-11-27 19:25:00.000000
"""

from collections.abc import Sequence

revision: str = "0010"
down_revision: str | Sequence[str] | None = ("0007", "0008", "0009")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the three branches touch separate tables."""


def downgrade() -> None:
    """Nothing to change."""
