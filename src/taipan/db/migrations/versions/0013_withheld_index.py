"""files: a partial index of the channels holding withheld files

Every upload and CVE match asks which channels hold withheld files; with no index that read every
row of ``files`` (0.1 s per upload at 100k files, about 1 s at 1M). The index holds only withheld
files, so it stays small and costs nothing on the writes of other files.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 17:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_files_withheld_channel", "files", ["channel_id"], sqlite_where=sa.text("withheld = 1"),
                    postgresql_where=sa.text("withheld"))


def downgrade() -> None:
    op.drop_index("ix_files_withheld_channel", table_name="files")
