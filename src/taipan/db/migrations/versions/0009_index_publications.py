"""index publications shared by every process: a pointer per partition to its files in the blob store

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 04:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "index_publications",
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("subdir", sa.String(length=64), nullable=False),
        sa.Column("family", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("etag_base", sa.String(length=64), nullable=False),
        sa.Column("last_modified", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "subdir"),
    )


def downgrade() -> None:
    op.drop_table("index_publications")
