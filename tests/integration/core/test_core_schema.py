"""The migrations build exactly the schema the models describe (on SQLite and PostgreSQL)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import taipan.db.maintenance  # noqa: F401  (registers its tables)
import taipan.db.mirrors  # noqa: F401
from taipan.db.migrate import upgrade
from taipan.db.models import Base


def test_migrations_match_the_models(db_url):
    upgrade(db_url)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()
