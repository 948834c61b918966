"""tokens with several live secrets, the revocation log, per-address login throttling, first logins

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "token_secrets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_id", sa.String(length=36), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["tokens.id"], name=op.f("fk_token_secrets_token_id_tokens"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_secrets")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_token_secrets_secret_hash")),
    )
    with op.batch_alter_table("token_secrets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_token_secrets_token_id"), ["token_id"], unique=False)
    op.create_table(
        "auth_revocations",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_auth_revocations")),
    )
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True))
    # Users that exist already were set up under the old rule (their channel made at creation):
    # count them as having logged in, so that a channel they removed is not recreated.
    op.execute("UPDATE users SET last_login_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_column("refreshed_at")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("last_login_at")
    op.drop_table("login_throttle")
    op.drop_table("auth_revocations")
    with op.batch_alter_table("token_secrets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_token_secrets_token_id"))
    op.drop_table("token_secrets")
