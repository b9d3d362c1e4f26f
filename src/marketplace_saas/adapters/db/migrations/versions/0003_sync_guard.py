"""sync guard: the syncs the mass-deletion guard stopped (the console's banner)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 01:40:02.241967
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

import marketplace_saas.adapters.db.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    utc = marketplace_saas.adapters.db.models.UtcDateTime(timezone=True)
    op.create_table(
        "sync_blocks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("blocked_at", utc, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("accounts_live", sa.Integer(), nullable=False),
        sa.Column("accounts_deleting", sa.Integer(), nullable=False),
        sa.Column("entitlements_live", sa.Integer(), nullable=False),
        sa.Column("entitlements_deleting", sa.Integer(), nullable=False),
        sa.Column(
            "sample",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("resolved_at", utc, nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolution", sa.String(length=20), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_blocks")),
    )


def downgrade() -> None:
    op.drop_table("sync_blocks")
