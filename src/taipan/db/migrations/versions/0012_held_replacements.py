"""held_changes.pending and .sha256: a mirror run's replacement of a file in a frozen channel is kept
apart until the channel is unfrozen

A mirror run into a frozen channel rewrote the row of a file it replaced at once: the frozen index
went on listing the old record while the file's URL served the new bytes (or, built afresh, left the
file out). The new values now wait in the held change, and the row keeps the old ones until unfreeze.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 15:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("held_changes") as batch:
        batch.add_column(sa.Column("pending", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
        batch.create_index("ix_held_changes_sha256", ["sha256"])


def downgrade() -> None:
    # The rows of replaced files still hold their old values, which the older version serves; the
    # mirror's next run finds them different from its upstream and replaces them again.
    with op.batch_alter_table("held_changes") as batch:
        batch.drop_index("ix_held_changes_sha256")
        batch.drop_column("sha256")
        batch.drop_column("pending")
