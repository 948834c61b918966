"""longer partition names (R binary trees such as bin/macosx/big-sur-x86_64/contrib/4.3)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 03:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("files", "index_changes")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("subdir", existing_type=sa.String(length=32), type_=sa.String(length=64),
                                  existing_nullable=False)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("subdir", existing_type=sa.String(length=64), type_=sa.String(length=32),
                                  existing_nullable=False)
