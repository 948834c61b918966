"""download report columns: token name, partition, file name, size, and the CVEs known at download time

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("token_name", sa.String(length=200)),
    ("subdir", sa.String(length=64)),
    ("filename", sa.String(length=255)),
    ("size", sa.BigInteger()),
    ("cve_ids", sa.Text()),
    ("cve_score", sa.Float()),
)


def upgrade() -> None:
    with op.batch_alter_table("downloads") as batch_op:
        for name, type_ in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
        batch_op.create_index("ix_downloads_channel_at", ["channel_id", "at"])


def downgrade() -> None:
    with op.batch_alter_table("downloads") as batch_op:
        batch_op.drop_index("ix_downloads_channel_at")
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
