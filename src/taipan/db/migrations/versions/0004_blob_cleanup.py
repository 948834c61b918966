"""blob cleanups

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-02 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "blob_cleanups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=True),
        sa.Column("scheduled", sa.Boolean(), nullable=False),
        sa.Column("candidates", sa.JSON(), nullable=True),
        sa.Column("scanned", sa.Integer(), nullable=False),
        sa.Column("orphans", sa.JSON(), nullable=False),
        sa.Column("orphan_bytes", sa.BigInteger(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("stale_scratch", sa.Integer(), nullable=False),
        sa.Column("stale_scratch_bytes", sa.BigInteger(), nullable=False),
        sa.Column("deleted", sa.Integer(), nullable=False),
        sa.Column("deleted_bytes", sa.BigInteger(), nullable=False),
        sa.Column("kept", sa.Integer(), nullable=False),
        sa.Column("scratch_removed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blob_cleanups")),
    )
    op.create_index("ix_blob_cleanups_created_at", "blob_cleanups", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_blob_cleanups_created_at", table_name="blob_cleanups")
    op.drop_table("blob_cleanups")
