"""mirrors

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 01:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mirrors",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("mirror_type", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("source_root", sa.Text(), nullable=False),
        sa.Column("cron", sa.String(length=100), nullable=False),
        sa.Column("proxy", sa.Text(), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sync_state", sa.JSON(), nullable=False),
        sa.Column("cache", sa.JSON(), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("run_owner", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_requested", sa.Boolean(), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["channel_id"], ["channels.id"], name=op.f("fk_mirrors_channel_id_channels"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirrors")),
        sa.UniqueConstraint("channel_id", "name", name="uq_mirrors_channel_name"),
    )
    with op.batch_alter_table("mirrors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mirrors_channel_id"), ["channel_id"], unique=False)
        batch_op.create_index("ix_mirrors_next_run_at", ["next_run_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mirrors", schema=None) as batch_op:
        batch_op.drop_index("ix_mirrors_next_run_at")
        batch_op.drop_index(batch_op.f("ix_mirrors_channel_id"))
    op.drop_table("mirrors")
