"""join the correlation, ops console and Amazon adapter migrations into one head

Revision ID: 0015
Revises: 0011, 0013, 0014
Create Date: 2026-11-27 22:20:00.000000
"""

from collections.abc import Sequence

revision: str = "0015"
down_revision: str | Sequence[str] | None = ("0011", "0013", "0014")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the three branches touch separate tables."""


def downgrade() -> None:
    """Nothing to undo."""
