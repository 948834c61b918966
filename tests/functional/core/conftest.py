"""Fixtures for the core functional tests: a fresh server on SQLite and, when reachable, PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_server(request, server_factory: Callable[..., object]) -> Iterator[object]:
    """A server of its own on each database backend (a throw-away PostgreSQL database)."""
    if request.param == "sqlite":
        yield server_factory()
        return
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=2).close()
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    name = f"taipan_core_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        server = server_factory({"TAIPAN_DATABASE__URL": f"postgresql://postgres@127.0.0.1:5432/{name}"})
        yield server
        server.stop()
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
