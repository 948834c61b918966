"""Database fixtures: every integration test that asks for ``db_url`` runs on SQLite and, when
reachable, on PostgreSQL (a throw-away database per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_ok() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'taipan.db'}"
        return
    if not _pg_ok():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    import psycopg

    name = f"taipan_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
