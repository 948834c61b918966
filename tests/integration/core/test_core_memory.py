"""What bounds a server process's memory: the shard cache's budget, and what the process imports."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from taipan.services.publication import _AddressedCache, put_bytes
from taipan.storage.filesystem import FilesystemBlobStore


def test_the_shard_cache_keeps_to_its_budget(tmp_path: Path) -> None:
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    stored = {}
    for i in range(40):
        data = bytes([i]) * 1000
        digest = hashlib.sha256(data).hexdigest()
        put_bytes(blobs, digest, data)
        stored[digest] = data
    big = os.urandom(2000)  # above a sixteenth of the budget: served, never kept
    big_digest = hashlib.sha256(big).hexdigest()
    put_bytes(blobs, big_digest, big)
    cache = _AddressedCache(16_000)
    for digest, data in stored.items():
        assert cache.read(blobs, digest) == data
    assert cache.read(blobs, big_digest) == big and big_digest not in cache
    kept = [d for d in stored if d in cache]
    assert kept == list(stored)[-16:]  # the newest 16 of 1,000 bytes: 16,000 bytes
    first = next(iter(stored))
    assert cache.read(blobs, first) == stored[first] and first in cache  # read again, kept again
    assert sum(len(stored[d]) for d in stored if d in cache) <= 16_000


def test_a_server_process_loads_neither_the_migrations_nor_httpx(tmp_path: Path) -> None:
    """`taipan serve` prepares the database in a child process and the app imports no upstream
    client until a mirror runs: neither is needed to serve, and each costs several MB per process."""
    script = textwrap.dedent("""
        import sys
        from taipan.admin.main import prepare_apart
        from taipan.settings import Settings
        from taipan.web.app import app_from_env

        settings = Settings()
        prepare_apart(settings)
        app = app_from_env()
        loaded = sorted(m for m in ("alembic", "httpx", "httpcore", "rich") if m in sys.modules)
        from taipan.services.publication import ADDRESSED_CACHE
        print(",".join(loaded) or "none", ADDRESSED_CACHE.limit)
    """)
    env = {**os.environ, "TAIPAN_HOME": str(tmp_path / "home"), "TAIPAN_ADMIN_PASSWORD": "admin-password-1",
           "TAIPAN_SERVER__SHARD_CACHE_SIZE": "12345"}
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["none", "12345"]  # and the shard cache has the process's budget
    assert (tmp_path / "home" / "taipan.db").exists()  # the child did migrate


def test_serve_reports_what_stops_the_preparation(tmp_path: Path) -> None:
    env = {**os.environ, "TAIPAN_HOME": str(tmp_path / "home"), "TAIPAN_ADMIN_PASSWORD": "short"}
    r = subprocess.run([sys.executable, "-m", "taipan.admin.main", "serve", "--port", "1"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert "error: The password is too short" in r.stderr and "hint:" in r.stderr
