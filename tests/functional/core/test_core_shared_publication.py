"""Index publications are shared by every process: a publish writes its files once to the blob store
and a pointer row; another `taipan serve` on the same home serves that pointer without building, a
restart serves the existing publication at once, and blob cleanup keeps the current publication's
blobs while reclaiming replaced ones."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from pathlib import Path

import httpx
import msgpack
import pytest
import zstandard

from taipan.domain import repodata as rd

HOURS = 3600


@pytest.fixture
def env(database_env: dict[str, str]) -> dict[str, str]:
    """The servers' settings: one SQLite home, or one PostgreSQL database of their own."""
    return database_env


def _upload(server, channel: str, path: Path) -> None:
    with server.client(server.admin_token()) as c:
        c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()


def _builds(server) -> float:
    """How many index publications this server process has built (adopted ones are not counted)."""
    r = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token()}"})
    r.raise_for_status()
    m = re.search(r'^taipan_index_publish_seconds_count\{family="conda"\} (\S+)$', r.text, re.M)
    return float(m.group(1)) if m else 0.0


def _wait_for(url: str, filename: str) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        r = httpx.get(url, timeout=10)
        if r.status_code == 200 and filename in r.json()["packages.conda"]:
            return r
        assert time.monotonic() < deadline, f"{filename} never became visible at {url}"
        time.sleep(0.05)


def _blob(home: Path, sha: str) -> Path:
    return home / "blobs" / sha[:2] / sha


def test_two_servers_share_publications_and_a_restart_builds_nothing(server_factory, conda_packages, env):
    a = server_factory(env)
    b = server_factory(env, home=a.home)
    with a.client(a.admin_token()) as c:
        c.post("/channels", json={"name": "shared"}).raise_for_status()
    hello, newer = conda_packages["hello"], conda_packages["hello-1.1"]
    url_a, url_b = (f"{s.api}/repo/shared/noarch/repodata.json" for s in (a, b))

    _upload(a, "shared", hello)
    first = _wait_for(url_a, hello.name)
    _upload(a, "shared", newer)
    current = _wait_for(url_a, newer.name)
    assert _builds(a) >= 1
    # The other process sees the upload and serves the very same bytes and ETag, without a build.
    other = _wait_for(url_b, newer.name)
    assert other.content == current.content and other.headers["etag"] == current.headers["etag"]
    assert _builds(b) == 0, _loads(b)
    # Every way of asking for a file of the adopted publication works there: encodings, 304s,
    # content-addressed shards, and lazily derived files (made from a local build).
    zipped = httpx.get(url_b, headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == current.content
    assert httpx.get(url_b, headers={"If-None-Match": current.headers["etag"]}).status_code == 304
    zst = httpx.get(url_b + ".zst")
    assert zst.status_code == 200 and zst.content == httpx.get(url_a + ".zst").content
    index = httpx.get(f"{b.api}/repo/shared/noarch/repodata_shards.msgpack.zst")
    assert index.status_code == 200
    cur = httpx.get(f"{b.api}/repo/shared/noarch/current_repodata.json")
    assert cur.status_code == 200 and list(cur.json()["packages.conda"]) == [newer.name]
    assert httpx.get(url_b).content == current.content

    # The publication lives in the blob store, in segments: the part of hello's bucket holds its
    # files' records (the only name here), content-addressed.
    part_current = rd.members(current.json()["packages.conda"])
    part_first = rd.members(first.json()["packages.conda"])
    sha_current, sha_first = (hashlib.sha256(p).hexdigest() for p in (part_current, part_first))
    assert _blob(a.home, sha_current).read_bytes() == part_current
    assert _blob(a.home, sha_first).exists()

    # A restart serves the existing publication at once: the same bytes, and no build.
    a.stop()
    b.stop()
    c_srv = server_factory(env, home=a.home)
    url_c = f"{c_srv.api}/repo/shared/noarch/repodata.json"
    again = httpx.get(url_c)
    assert again.status_code == 200 and again.content == current.content
    assert again.headers["etag"] == current.headers["etag"]
    assert _builds(c_srv) == 0
    zipped = httpx.get(url_c, headers={"Accept-Encoding": "gzip"})  # httpx decodes it
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == current.content

    # Blob cleanup: once everything is old, the replaced publication's blobs are reclaimed and the
    # current publication's are kept (and still served).
    for p in (a.home / "blobs").rglob("*"):
        if p.is_file() and p.parent.name != "tmp":
            t = time.time() - 2 * HOURS
            os.utime(p, (t, t))
    with c_srv.client(c_srv.admin_token()) as c:
        report = c.post("/diagnose/blobs", json={"download_as": "json"}).json()
        assert report["orphan_count"] >= 1
        c.post("/system/blob_cleanup").raise_for_status()
        found = _wait_state(c, "found")
        assert sha_first in found["orphans"] and sha_current not in found["orphans"]
        assert hashlib.sha256(hello.read_bytes()).hexdigest() not in found["orphans"]
        c.delete("/system/blob_cleanup").raise_for_status()
        _wait_state(c, "done")
    assert not _blob(a.home, sha_first).exists()
    assert _blob(a.home, sha_current).exists()
    fresh = httpx.get(url_c, headers={"Cache-Control": "no-cache"})
    assert fresh.status_code == 200 and json.loads(fresh.content) == json.loads(current.content)


def _wait_state(c: httpx.Client, state: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        body = c.get("/system/blob_cleanup").json()
        if body["state"] == state:
            return body
        assert time.monotonic() < deadline and body["state"] not in ("failed", "cancelled"), body
        time.sleep(0.1)


def _shard_url(server, channel: str, token: str | None = None) -> str:
    """The URL of hello's shard in a channel, as its shard index names it."""
    base = f"{server.api}/repo/{'t/' + token + '/' if token else ''}{channel}/noarch"
    raw = httpx.get(f"{base}/repodata_shards.msgpack.zst").content
    index = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(raw))
    return f"{base}/shards/{index['shards']['hello'].hex()}.msgpack.zst"


def test_shards_are_served_by_digest_only_where_published(server_factory, conda_packages, package_builder):
    """Shards are read from the shared blob store by digest; a channel serves only the digests its
    current or previous shard index names, never another (private) channel's or any other blob."""
    srv = server_factory({})
    token = srv.admin_token()
    with srv.client(token) as c:
        c.post("/channels", json={"name": "open"}).raise_for_status()
        c.post("/channels", json={"name": "secret", "privacy": "private"}).raise_for_status()
    _upload(srv, "secret", conda_packages["hello"])
    secret_shard = _shard_url(srv, "secret", token)
    assert httpx.get(secret_shard).status_code == 200
    digest = secret_shard.rsplit("/", 1)[1]
    open_base = f"{srv.api}/repo/open/noarch"
    assert httpx.get(f"{open_base}/shards/{digest}").status_code == 404
    # Nor any other blob: the package file itself is stored under its sha256.
    package_sha = hashlib.sha256(conda_packages["hello"].read_bytes()).hexdigest()
    assert httpx.get(f"{open_base}/shards/{package_sha}.msgpack.zst").status_code == 404
    # In the public channel: the shard of the current and of the previous publication are served,
    # an older one no more.
    _upload(srv, "open", conda_packages["world"])
    _upload(srv, "open", conda_packages["hello"])
    first = _shard_url(srv, "open")
    _upload(srv, "open", conda_packages["hello-1.1"])
    second = _shard_url(srv, "open")
    assert second != first
    assert httpx.get(first).status_code == 200 and httpx.get(second).status_code == 200
    shard = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(httpx.get(second).content))
    assert set(shard["packages.conda"]) == {"hello-1.0-0.conda", "hello-1.1-0.conda"}
    # One publication later (another name changes), the first is two generations old.
    _upload(srv, "open", package_builder("other", "1.0", "noarch"))
    assert _shard_url(srv, "open") == second
    assert httpx.get(first).status_code == 404 and httpx.get(second).status_code == 200


def _loads(server) -> dict[str, float]:
    """How this server process came to hold its partitions' indexes (adopted / resumed / full)."""
    r = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.admin_token()}"})
    r.raise_for_status()
    found = re.findall(r'^taipan_index_partition_loads_total\{how="(\w+)"\} (\S+)$', r.text, re.M)
    return {how: float(count) for how, count in found}


def test_a_restart_resumes_the_index_from_the_publication_instead_of_loading_every_row(
        server_factory, conda_packages, package_builder):
    """Changes after a restart (also those made before it that nobody asked for) are applied to the
    index resumed from the stored publication's snapshot, not to the partition loaded anew from every
    row, and give the very bytes a full build of the same rows gives."""
    # Without the refresher, which would publish the last upload in the background before the stop
    # (as for a process that writes without serving, or one that stops at once).
    a = server_factory({"TAIPAN_SERVER__KEEP_FRESH_SECONDS": "0"})
    with a.client(a.admin_token()) as c:
        c.post("/channels", json={"name": "resume"}).raise_for_status()
    names = [package_builder(f"pkg{i}", "1.0", "noarch") for i in range(4)]  # several buckets
    for path in (conda_packages["hello"], *names):
        _upload(a, "resume", path)
    _wait_for(f"{a.api}/repo/resume/noarch/repodata.json", names[-1].name)
    assert _loads(a)["full"] == 1
    # One more upload, and a stop before anyone asks: the stored publication is a change behind.
    _upload(a, "resume", conda_packages["hello-1.1"])
    a.stop()

    b = server_factory({}, home=a.home)
    base = f"{b.api}/repo/resume/noarch"
    _wait_for(f"{base}/repodata.json", conda_packages["hello-1.1"].name)
    assert _loads(b) == {"adopted": 1, "resumed": 1, "full": 0}
    late = package_builder("late", "1.0", "noarch")
    _upload(b, "resume", late)
    with b.client(b.admin_token()) as c:  # a removal goes the same way
        c.put("/channels/resume/artifacts/bulk", json={"action": "delete", "items": [
            {"name": "pkg0", "family": "conda"}]}).raise_for_status()
    resumed = {f: httpx.get(f"{base}/{f}").content for f in ("repodata.json", "current_repodata.json")}
    published = json.loads(resumed["repodata.json"])["packages.conda"]
    assert late.name in published and names[0].name not in published and names[1].name in published
    assert _loads(b)["full"] == 0
    shards = {name: _shard(base, name) for name in ("hello", "late")}
    assert set(shards["hello"]["packages.conda"]) == {"hello-1.0-0.conda", "hello-1.1-0.conda"}
    b.stop()

    # The same rows built from scratch (no publication to adopt) give the same bytes.
    db = sqlite3.connect(a.home / "taipan.db")
    with db:
        db.execute("DELETE FROM index_publications")
    db.close()
    c_srv = server_factory({}, home=a.home)
    base = f"{c_srv.api}/repo/resume/noarch"
    for f, data in resumed.items():
        assert httpx.get(f"{base}/{f}").content == data, f
    assert _loads(c_srv) == {"adopted": 0, "resumed": 0, "full": 1}
    assert {name: _shard(base, name) for name in shards} == shards


def _shard(base: str, name: str) -> dict:
    unzst = zstandard.ZstdDecompressor().decompressobj
    index = msgpack.unpackb(unzst().decompress(httpx.get(f"{base}/repodata_shards.msgpack.zst").content))
    shard = httpx.get(f"{base}/shards/{index['shards'][name].hex()}.msgpack.zst")
    return msgpack.unpackb(unzst().decompress(shard.content))
