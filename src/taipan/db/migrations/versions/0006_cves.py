"""CVE store: cves, cve_affects, cve_files, cve_history, cpe_mappings, cve_sync_state; files get
cve_score and cve_status, and an index on name (matching looks files up by package name)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "cves",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("published_at", TS, nullable=True),
        sa.Column("modified_at", TS, nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("score_type", sa.String(length=8), nullable=True),
        sa.Column("cvss2", sa.JSON(), nullable=True),
        sa.Column("cvss3", sa.JSON(), nullable=True),
        sa.Column("cvss4", sa.JSON(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_note", sa.Text(), nullable=False),
        sa.Column("status_by", sa.String(length=64), nullable=True),
        sa.Column("status_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cves")),
    )
    op.create_index("ix_cves_score", "cves", ["score"])
    op.create_index("ix_cves_published_at", "cves", ["published_at"])
    op.create_index(op.f("ix_cves_status"), "cves", ["status"])
    op.create_table(
        "cve_affects",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cve_id", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("ecosystem", sa.String(length=16), nullable=False),
        sa.Column("product", sa.String(length=255), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["cve_id"], ["cves.id"], name=op.f("fk_cve_affects_cve_id_cves"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cve_affects")),
    )
    op.create_index("ix_cve_affects_ecosystem_package", "cve_affects", ["ecosystem", "package"])
    op.create_index("ix_cve_affects_cve_source", "cve_affects", ["cve_id", "source"])
    op.create_index(op.f("ix_cve_affects_product"), "cve_affects", ["product"])
    op.create_table(
        "cve_files",
        sa.Column("cve_id", sa.String(length=64), nullable=False),
        sa.Column("file_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["cve_id"], ["cves.id"], name=op.f("fk_cve_files_cve_id_cves"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["file_id"], ["files.id"], name=op.f("fk_cve_files_file_id_files"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("cve_id", "file_id", name=op.f("pk_cve_files")),
    )
    op.create_index(op.f("ix_cve_files_file_id"), "cve_files", ["file_id"])
    op.create_table(
        "cve_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cve_id", sa.String(length=64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("old_status", sa.String(length=16), nullable=True),
        sa.Column("new_status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["cve_id"], ["cves.id"], name=op.f("fk_cve_history_cve_id_cves"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cve_history")),
    )
    op.create_index(op.f("ix_cve_history_cve_id"), "cve_history", ["cve_id"])
    op.create_table(
        "cpe_mappings",
        sa.Column("product", sa.String(length=255), nullable=False),
        sa.Column("packages", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("product", name=op.f("pk_cpe_mappings")),
    )
    op.create_table(
        "cve_sync_state",
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("etag", sa.String(length=255), nullable=True),
        sa.Column("last_modified", sa.String(length=64), nullable=True),
        sa.Column("synced_at", TS, nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_cve_sync_state")),
    )
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("cve_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("cve_status", sa.String(length=16), nullable=True))
    op.create_index("ix_files_name", "files", ["name"])


def downgrade() -> None:
    op.drop_index("ix_files_name", table_name="files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("cve_status")
        batch.drop_column("cve_score")
    for table in ("cve_sync_state", "cpe_mappings", "cve_history", "cve_files", "cve_affects", "cves"):
        op.drop_table(table)
