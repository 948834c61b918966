"""mirror upstream credentials apart from the URL, encrypted

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 04:10:00

Existing mirrors whose source or proxy URL carries credentials (user:password@, a token as user
name, /t/<token>/, query values) get them moved: the URL keeps a masked form, the real one goes
encrypted into source_secret / proxy_secret, with the key of the settings (TAIPAN_SECRETS__KEY, else
$TAIPAN_HOME/secret.key). Stored file URLs of those mirrors are masked the same way.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("mirrors") as batch:
        batch.add_column(sa.Column("source_secret", sa.Text(), nullable=True))
        batch.add_column(sa.Column("proxy_secret", sa.Text(), nullable=True))
    _seal_existing()


def _seal_existing() -> None:
    from taipan.domain.urls import has_credentials, redact_url

    conn = op.get_bind()
    mirrors = sa.table("mirrors", sa.column("id", sa.String), sa.column("source_root", sa.Text),
                       sa.column("proxy", sa.Text), sa.column("source_secret", sa.Text),
                       sa.column("proxy_secret", sa.Text))
    files = sa.table("files", sa.column("id", sa.String), sa.column("mirror_id", sa.String),
                     sa.column("source_url", sa.Text))
    rows = [r for r in conn.execute(sa.select(mirrors.c.id, mirrors.c.source_root, mirrors.c.proxy))
            if has_credentials(r.source_root) or has_credentials(r.proxy)]
    if not rows:
        return
    from taipan.settings import Settings
    from taipan.storage.secrets import secret_box

    settings = Settings()
    box = secret_box(settings.home, settings.secrets.key)
    for r in rows:
        values = {}
        if has_credentials(r.source_root):
            values.update(source_root=redact_url(r.source_root), source_secret=box.seal(r.source_root))
        if has_credentials(r.proxy):
            values.update(proxy=redact_url(r.proxy), proxy_secret=box.seal(r.proxy))
        conn.execute(sa.update(mirrors).where(mirrors.c.id == r.id).values(**values))
        for f in conn.execute(sa.select(files.c.id, files.c.source_url).where(files.c.mirror_id == r.id)):
            if has_credentials(f.source_url):
                conn.execute(sa.update(files).where(files.c.id == f.id)
                             .values(source_url=redact_url(f.source_url)))


def downgrade() -> None:
    with op.batch_alter_table("mirrors") as batch:
        batch.drop_column("proxy_secret")
        batch.drop_column("source_secret")
