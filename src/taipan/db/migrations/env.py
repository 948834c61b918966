"""Alembic environment: migrations run against the URL given by taipan.db.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

import taipan.db.auth  # noqa: F401  (registers the token secret and login tables on Base.metadata)
import taipan.db.cves  # noqa: F401  (registers the CVE tables on Base.metadata)
import taipan.db.maintenance  # noqa: F401  (registers the blob_cleanups table on Base.metadata)
import taipan.db.mirrors  # noqa: F401  (registers the mirrors table on Base.metadata)
from taipan.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
