"""$TAIPAN_HOME, the SQLite database (with -wal and -shm), the blob store and spool files are
owner-only: created so, and tightened at start when they exist with looser modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def loose_paths(home: Path) -> list[str]:
    """Everything under home (and home itself) that anyone but the owner may use."""
    found = [] if mode(home) & 0o077 == 0 else [f"{home} {oct(mode(home))}"]
    for dirpath, dirnames, filenames in os.walk(home):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if p.name == "server.log":  # written by the test harness, not the server
                continue
            if mode(p) & 0o077:
                found.append(f"{p} {oct(mode(p))}")
    return found


def test_home_database_and_blobs_are_owner_only(server_factory, conda_packages, tmp_path):
    home = tmp_path / "home"
    server = server_factory(home=home)
    token = server.admin_token()
    with server.client(token) as c:
        c.post("/channels", json={"name": "modes"}).raise_for_status()
        hello = conda_packages["hello"]
        c.post("/channels/modes/artifacts", files={"content": (hello.name, hello.read_bytes())}).raise_for_status()
    sha = httpx.get(f"{server.api}/repo/modes/noarch/repodata.json").json()["packages.conda"][hello.name]["sha256"]
    blob = home / "blobs" / sha[:2] / sha
    assert blob.exists() and (home / "taipan.db").exists()
    assert (home / "taipan.db-wal").exists()  # the server is running: WAL files exist
    assert mode(home) == 0o700 and mode(home / "taipan.db") == 0o600 and mode(blob) == 0o600
    assert loose_paths(home) == []
    server.stop()

    # an existing home with loose modes (an older version, a restore, a copy) is tightened at start
    for dirpath, _dirnames, filenames in os.walk(home):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(Path(dirpath) / name, 0o644)
    leftover = home / "blobs" / "tmp" / "upload-leftover"
    leftover.write_bytes(b"half an upload")
    leftover.chmod(0o644)
    assert len(loose_paths(home)) > 5
    server = server_factory(home=home)
    assert loose_paths(home) == []
    with server.client(token) as c:  # and it still works
        assert c.get("/channels/modes/artifacts").json()["total_count"] == 1
    assert httpx.get(f"{server.api}/repo/modes/noarch/{hello.name}").content == hello.read_bytes()
