"""kill -9 during uploads and mirror syncs: nothing that was acknowledged is lost, nothing is
half-published, and the server comes back serving a consistent index."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "integration" / "mirrors"))

from mirror_upstream import UpstreamServer, build_channel  # noqa: E402

# Loopback upstreams are internal addresses: allowed explicitly, as an operator would.
LOOPBACK = {"TAIPAN_MIRRORS__ALLOWED_NETWORKS": '["127.0.0.0/8", "::1/128"]'}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def half_sent_upload(server, token: str, channel: str, path: Path) -> socket.socket:
    """An upload whose body is only half on the wire (the server is reading it when killed)."""
    request = httpx.Request("POST", f"{server.api}/channels/{channel}/artifacts", headers={"X-Auth": token},
                            files={"content": (path.name, path.read_bytes())})
    body = request.read()
    head = [f"POST {request.url.raw_path.decode()} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"]
    head += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body[: len(body) // 2])
    return sock


def served(server, token: str, channel: str) -> dict[str, str]:
    """filename -> sha256 of every file the channel's indexes publish, each downloaded and checked."""
    out: dict[str, str] = {}
    with httpx.Client(base_url=f"{server.api}/repo/{channel}", headers={"X-Auth": token}, timeout=30) as c:
        for subdir in ("noarch", "linux-64"):
            r = c.get(f"/{subdir}/repodata.json")
            if r.status_code == 404:
                continue
            assert r.status_code == 200, r.text
            rd = r.json()
            for fn, rec in {**rd.get("packages", {}), **rd.get("packages.conda", {})}.items():
                got = c.get(f"/{subdir}/{fn}")
                assert got.status_code == 200, (fn, got.status_code)
                assert sha256(got.content) == rec["sha256"], f"{fn} is published but its bytes are not"
                out[fn] = rec["sha256"]
    return out


def kill(server) -> None:
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()


def test_kill_during_uploads_loses_nothing_acknowledged_and_publishes_nothing_half(
        server_factory, conda_packages, package_builder):
    server = server_factory()
    token = server.admin_token()
    channel = "crash-uploads"
    done = [conda_packages["hello"], conda_packages["world"]]
    pending = [conda_packages["hello-1.1"], package_builder("bigger", "1.0", "noarch", content="x" * 400_000)]
    with server.client(token) as c:
        c.post("/channels", json={"name": channel}).raise_for_status()
        for path in done:
            r = c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())})
            assert r.status_code == 201, r.text
    socks = [half_sent_upload(server, token, channel, path) for path in pending]
    time.sleep(0.5)  # the server is now reading both bodies
    kill(server)
    for s in socks:
        s.close()

    server = server_factory(home=server.home)
    acknowledged = {p.name: sha256(p.read_bytes()) for p in done}
    published = served(server, token, channel)
    assert published == acknowledged
    with server.client(token) as c:
        listed = {}
        for package in ("hello", "world", "bigger"):
            r = c.get(f"/channels/{channel}/artifacts/conda/{package}/files")
            assert r.status_code in (200, 404), r.text
            listed |= {f["name"]: f["sha256"] for f in (r.json()["items"] if r.status_code == 200 else [])}
        assert listed == acknowledged
        # What was cut off can simply be sent again: no half-stored row or blob stands in the way.
        for path in pending:
            r = c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())})
            assert r.status_code == 201, r.text
    assert set(served(server, token, channel)) == set(acknowledged) | {p.name for p in pending}


@pytest.fixture
def upstream(tmp_path_factory) -> UpstreamServer:
    srv = UpstreamServer(build_channel(tmp_path_factory.mktemp("crash-upstream") / "channel")).start()
    yield srv
    srv.stop()


def wait_mirror(server, token: str, channel: str, name: str, pred, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    m: dict = {}
    with server.client(token) as c:
        while time.monotonic() < deadline:
            r = c.get(f"/channels/{channel}/mirrors/{name}")
            if r.status_code == 200:
                m = r.json()
                if pred(m):
                    return m
            time.sleep(0.1)
    raise AssertionError(f"mirror {name} never got there: {m}")


def test_kill_during_a_mirror_sync_publishes_nothing_half(server_factory, upstream):
    server = server_factory(LOOPBACK)
    token = server.admin_token()
    channel = "crash-mirror"
    with server.client(token) as c:
        c.post("/channels", json={"name": channel}).raise_for_status()
        r = c.post(f"/channels/{channel}/mirrors", json={
            "mirror_name": "m", "source_root": upstream.url, "mirror_mode": "active", "run_now": True,
            "filters": {"only_specs": ["zlib"]}})
        assert r.status_code == 201, r.text
    wait_mirror(server, token, channel, "m", lambda m: m["state"] == "completed")
    before = served(server, token, channel)
    assert before

    upstream.delay = 0.3  # every package file takes a while: the sync is mid-way when killed
    with server.client(token) as c:
        r = c.put(f"/channels/{channel}/mirrors/m", json={"filters": {}, "run_now": True})
        assert r.status_code == 202, r.text
    wait_mirror(server, token, channel, "m", lambda m: m["state"] == "running"
                and m["sync_state"].get("current_step_number") == 4
                and m["sync_state"].get("current_step_percentage", 0) >= 20)
    kill(server)

    upstream.delay = 2.0  # keep the resumed run busy while the index is looked at
    server = server_factory(LOOPBACK, home=server.home)
    assert served(server, token, channel) == before  # the last good index, every file intact
    upstream.delay = 0
    wait_mirror(server, token, channel, "m", lambda m: m["state"] == "completed"
                and m["sync_state"].get("finished_at"))
    after = served(server, token, channel)
    assert set(before) < set(after)
