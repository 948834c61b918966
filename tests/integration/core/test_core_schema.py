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


def test_the_channels_holding_withheld_files_are_read_from_their_index(db_url):
    """Asked on every upload: a scan of every file was 0.1 s per upload at 100k files."""
    from taipan.services.cve_enforcement import withheld_channels

    upgrade(db_url)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            sql = str(withheld_channels().compile(conn, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "sqlite":
                plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            else:  # an empty table: only a table scan switched off shows which index may answer it
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
            assert "ix_files_withheld_channel" in plan, plan
    finally:
        engine.dispose()


def test_a_refresh_reads_the_changed_rows_from_their_index(db_url):
    """Every serving process reads the rows a change names after every upload: through the index of
    (channel, partition) alone that read every row of the partition (0.46 s at 1M records)."""
    from taipan.services.indexing import changed_rows

    upgrade(db_url)
    engine = create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            sql = str(changed_rows("c", "conda", "noarch", ["a-1-0.conda", "b-1-0.conda"]).compile(
                conn, compile_kwargs={"literal_binds": True}))
            if conn.dialect.name == "sqlite":
                plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
                assert "filename=?" in plan, plan
            else:
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = " ".join(str(row) for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))
                assert "filename" in plan.split("Index Cond", 1)[-1], plan
            assert "ix_files_channel_subdir_filename" in plan, plan
    finally:
        engine.dispose()
