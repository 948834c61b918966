"""held_changes: what changed in a frozen channel, published when it is unfrozen

Until now a frozen channel's index was simply not refreshed, so a file withheld by the channel's CVE
filters after the freeze stayed listed. Now a frozen channel's changes are held apart and its index
is refreshed with the rest (files withheld, restored or removed). Channels frozen at the upgrade
hold what their index did not publish yet: the changes after each partition's publication.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "held_changes",
        sa.Column("channel_id", sa.String(length=36), nullable=False),
        sa.Column("subdir", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("channel_id", "subdir", "filename"),
    )
    op.execute(
        "INSERT INTO held_changes (channel_id, subdir, filename) "
        "SELECT DISTINCT c.channel_id, c.subdir, c.filename FROM index_changes c "
        "JOIN index_publications p ON p.channel_id = c.channel_id AND p.subdir = c.subdir "
        "JOIN channels ch ON ch.id = c.channel_id "
        "WHERE ch.frozen AND c.seq > p.seq")


def downgrade() -> None:
    # Back into the index log: the older version does not refresh a frozen channel's index, and
    # publishes them when it is unfrozen.
    op.execute(
        "INSERT INTO index_changes (channel_id, subdir, filename, created) "
        "SELECT channel_id, subdir, filename, CURRENT_TIMESTAMP FROM held_changes")
    op.drop_table("held_changes")
