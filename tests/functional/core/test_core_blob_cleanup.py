"""Blob cleanup through the HTTP API: blobs of removed files, orphans and half-written spool files
left by a kill are reclaimed; nothing any file row (or a new upload) references is ever deleted."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

HOURS = 3600


def upload(c: httpx.Client, channel: str, path: Path) -> httpx.Response:
    return c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())})


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def wait(c: httpx.Client, *states: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        body = c.get("/system/blob_cleanup").json()
        if body["state"] in states or time.monotonic() > deadline:
            assert body["state"] in states, body
            return body
        time.sleep(0.1)


@pytest.fixture
def server(server_factory):
    return server_factory()


def test_cleanup_reclaims_orphans_and_stale_spool_files_only(server, conda_packages):
    blobs = server.home / "blobs"
    c = server.client(server.admin_token())
    for name in ("keep", "gone", "copy"):
        c.post("/channels", json={"name": name}).raise_for_status()
    hello, newer, world = conda_packages["hello"], conda_packages["hello-1.1"], conda_packages["world"]
    upload(c, "keep", hello).raise_for_status()
    upload(c, "keep", newer).raise_for_status()
    upload(c, "gone", world).raise_for_status()
    r = c.put("/channels/keep/artifacts/bulk", json={
        "action": "copy", "items": [{"name": "hello", "ckey": f"noarch/{hello.name}"}], "target_channel": "copy"})
    assert r.status_code == 202
    # removed files leave their blobs behind: hello 1.0 and 1.1 deleted from "keep" (1.0 is still in
    # "copy": a copy shares the blob), and the channel holding world deleted
    c.put("/channels/keep/artifacts/bulk", json={"action": "delete", "items": [{"name": "hello"}]}).raise_for_status()
    assert c.delete("/channels/gone").status_code == 202
    # what a kill -9 leaves: a blob stored before its row was committed, and spool/partial files
    orphan = b"stored, then the server was killed before the commit"
    orphan_sha = hashlib.sha256(orphan).hexdigest()
    (blobs / orphan_sha[:2]).mkdir(exist_ok=True)
    (blobs / orphan_sha[:2] / orphan_sha).write_bytes(orphan)
    for name in ("upload-killed", f"mirror-{'a' * 64}.part", "passive-x.part", "upload-in-progress"):
        (blobs / "tmp" / name).write_bytes(b"partial")
    recent = b"an orphan from a moment ago: an upload may be about to commit its row"
    recent_sha = hashlib.sha256(recent).hexdigest()
    (blobs / recent_sha[:2]).mkdir(exist_ok=True)
    (blobs / recent_sha[:2] / recent_sha).write_bytes(recent)
    # everything is two hours old except the recent orphan and the upload in progress
    for p in blobs.rglob("*"):
        if p.is_file() and p.name not in (recent_sha, "upload-in-progress"):
            age(p, 2 * HOURS)

    report = c.post("/diagnose/blobs", json={"download_as": "json", "channel_names": ["keep", "copy"]}).json()
    assert report["orphan_count"] == 3 and report["recent_orphan_count"] == 1
    assert report["stale_scratch_count"] == 3 and report["scratch_count"] == 4
    assert [(ch["channel"], ch["file_count"], ch["missing_count"]) for ch in report["channels"]] == [
        ("keep", 0, 0), ("copy", 1, 0)]

    found = c.post("/system/blob_cleanup").json()
    assert found["state"] in ("queued", "scanning", "found")
    found = wait(c, "found")
    expected = {sha(newer), sha(world), orphan_sha}
    assert set(found["orphans"]) == expected and found["orphan_count"] == 3
    assert found["stale_scratch_count"] == 3
    assert all(b.exists() for b in (blobs / s[:2] / s for s in expected)), "a scan deletes nothing"
    # between the scan and the deletion, world is uploaded again: its blob must survive
    c.post("/channels", json={"name": "again"}).raise_for_status()
    upload(c, "again", world).raise_for_status()

    r = c.delete("/system/blob_cleanup")
    assert r.status_code == 200 and r.json()["state"] == "deleting"
    done = wait(c, "done")
    assert done["deleted_count"] == 2 and done["kept_count"] == 1 and done["scratch_removed"] == 3
    assert not (blobs / sha(newer)[:2] / sha(newer)).exists()
    assert not (blobs / orphan_sha[:2] / orphan_sha).exists()
    assert (blobs / recent_sha[:2] / recent_sha).exists()
    assert sorted(p.name for p in (blobs / "tmp").iterdir()) == ["upload-in-progress"]
    for channel, pkg in (("copy", hello), ("again", world)):
        r = httpx.get(f"{server.api}/repo/{channel}/{'linux-64' if pkg is world else 'noarch'}/{pkg.name}")
        assert r.status_code == 200 and r.content == pkg.read_bytes(), channel
    report = c.post("/diagnose/blobs", json={}).json()
    assert report["orphan_count"] == 0 and all(ch["missing_count"] == 0 for ch in report["channels"])
    # nothing left to act on
    r = c.delete("/system/blob_cleanup")
    assert r.status_code == 404 and r.json()["code"] == "no_blob_cleanup"
    c.close()


def test_cleanup_of_given_digests_and_bad_input(server, conda_packages):
    c = server.client(server.admin_token())
    c.post("/channels", json={"name": "one"}).raise_for_status()
    hello = conda_packages["hello"]
    upload(c, "one", hello).raise_for_status()
    c.put("/channels/one/artifacts/bulk", json={"action": "delete", "items": [{"name": "hello"}]}).raise_for_status()
    for p in (server.home / "blobs").rglob("*"):
        if p.is_file():
            age(p, 2 * HOURS)
    r = c.post("/system/blob_cleanup", json=["0" * 64, sha(hello)])
    assert r.status_code == 200 and r.json()["candidates"] == 2
    found = wait(c, "found")
    assert found["orphans"] == [sha(hello)] and found["scanned"] == 2
    # only one cleanup at a time
    assert c.post("/system/blob_cleanup").status_code in (200, 409)
    for bad in (["nothex"], "x", {"sha256": [1]}, ["0" * 64] * 10_001):
        r = c.post("/system/blob_cleanup", json=bad)
        assert r.status_code == 400 and r.json()["code"] == "invalid_candidates", (bad, r.text)
    r = c.post("/diagnose/blobs", json={"download_as": "csv"})
    assert r.status_code == 400 and r.json()["code"] == "unsupported_format"
    r = c.post("/diagnose/blobs", json={"channel_names": ["nope"]})
    assert r.status_code == 404
    c.close()


def test_only_admins_may_clean_or_diagnose(server):
    name = f"u{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", "user-pass-123"],
                   check=True, env={**os.environ, "TAIPAN_HOME": str(server.home)}, capture_output=True)
    user = server.login(name, "user-pass-123")
    for method, path in (("POST", "/system/blob_cleanup"), ("GET", "/system/blob_cleanup"),
                         ("DELETE", "/system/blob_cleanup"), ("POST", "/diagnose/blobs")):
        r = httpx.request(method, f"{server.api}{path}")
        assert r.status_code == 401, (method, path, r.text)
        r = httpx.request(method, f"{server.api}{path}", headers={"Authorization": f"Bearer {user}"})
        assert r.status_code == 403 and r.json()["code"] == "admin_required", (method, path, r.text)
    # an admin token without the scope the action needs is refused too
    session = server.login()
    narrow = httpx.post(f"{server.api}/account/tokens", json={"name": "dl", "scopes": ["artifact:download"]},
                        headers={"Authorization": f"Bearer {session}"}).json()["token"]
    r = httpx.post(f"{server.api}/system/blob_cleanup", headers={"X-Auth": narrow})
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"


def test_a_queued_cleanup_can_be_cancelled(server_factory):
    """With the Redis queue and no worker running, the scan stays queued: DELETE cancels it."""
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except redis.exceptions.ConnectionError:
        pytest.skip("Redis at 127.0.0.1:6379 is not reachable")
    queue = f"taipan-test-{uuid.uuid4().hex[:8]}"
    server = server_factory({"TAIPAN_JOBS__BACKEND": "redis", "TAIPAN_JOBS__QUEUE_NAME": queue})
    try:
        with server.client(server.admin_token()) as c:
            assert c.post("/system/blob_cleanup").json()["state"] == "queued"
            r = c.post("/system/blob_cleanup")
            assert r.status_code == 409 and r.json()["code"] == "blob_cleanup_running"
            r = c.delete("/system/blob_cleanup")
            assert r.status_code == 200 and r.json()["state"] == "cancelled"
            assert c.get("/system/blob_cleanup").json()["state"] == "cancelled"
            assert c.post("/system/blob_cleanup").status_code == 200  # a new one may start
    finally:
        server.stop()
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in client.scan_iter(f"*{queue}*"):
            client.delete(key)
