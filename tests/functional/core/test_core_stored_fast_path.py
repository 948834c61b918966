"""Stored files answered from memory (web/repo/stored.py) on uvicorn and on granian: the first
download of a file finds it in the database, later ones answer from memory in ASGI. Both answers are
the same: bytes, HEAD, Range (206, suffix, 416, If-Range), If-None-Match; private channels with
/t/<token>/ and basic auth; a revoked token, a channel made private and a removed file stop being
served exactly as on the full path; downloads are counted once per GET from byte 0."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import time
import uuid

import httpx
import pytest


@pytest.fixture(params=["uvicorn", "granian"])
def server(request, server_factory):
    return server_factory(args=("--server", request.param))


def upload(server, token: str, channel: str, package, privacy: str = "public") -> str:
    with server.client(token) as c:
        c.post("/channels", json={"name": channel, "privacy": privacy}).raise_for_status()
        c.post(f"/channels/{channel}/artifacts",
               files={"content": (package.name, package.read_bytes())}).raise_for_status()
    return f"{server.api}/repo/{channel}/{package.parent.name}/{package.name}"


def remove(server, token: str, channel: str, family: str, name: str, ckey: str) -> None:
    """Delete one file of a channel (a bulk delete, as conda-repo-cli sends it)."""
    with server.client(token) as c:
        r = c.put(f"/channels/{channel}/artifacts/bulk", json={"action": "delete", "items": [
            {"name": name, "family": family, "ckey": ckey}]})
        assert r.status_code == 202, r.text


def wait_for(check, what: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def test_every_answer_is_the_same_from_memory(server, conda_packages):
    p = conda_packages["hello"]
    data = p.read_bytes()
    url = upload(server, server.admin_token(), "fast", p)
    for _ in range(3):  # the first round finds the file in the database, the others in memory
        got = httpx.get(url)
        assert got.status_code == 200 and got.content == data
        etag = got.headers["etag"]
        assert got.headers["accept-ranges"] == "bytes" and int(got.headers["content-length"]) == len(data)
        assert got.headers["cache-control"].startswith("public") and "immutable" in got.headers["cache-control"]
        head = httpx.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(data)) and head.headers["etag"] == etag
        part = httpx.get(url, headers={"Range": "bytes=5-14"})
        assert part.status_code == 206 and part.content == data[5:15]
        assert part.headers["content-range"] == f"bytes 5-14/{len(data)}"
        big = httpx.get(url, headers={"Range": "bytes=100-"})
        assert big.status_code == 206 and big.content == data[100:]
        tail = httpx.get(url, headers={"Range": "bytes=-10"})
        assert tail.status_code == 206 and tail.content == data[-10:]
        beyond = httpx.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
        several = httpx.get(url, headers={"Range": "bytes=0-1,5-6"})
        assert several.status_code == 200 and several.content == data
        same = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
        assert same.status_code == 206 and same.content == data[:10]
        other = httpx.get(url, headers={"Range": "bytes=0-9", "If-Range": '"another"'})
        assert other.status_code == 200 and other.content == data
        assert httpx.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert httpx.get(url, headers={"If-None-Match": '"another"'}).status_code == 200
        assert etag == f'"{hashlib.sha256(data).hexdigest()}"'


def test_large_files_and_spans_arrive_whole(server, package_builder):
    """A package above the sizes read in one go (2 MiB) and spans of every size class arrive whole:
    whole files by the server's pathsend (granian) or reads handed over in 256 KiB pieces."""
    content = base64.b64encode(os.urandom(4 << 20)).decode()  # ~4 MB of package after compression
    p = package_builder("large", "1.0", "noarch", content=content)
    data = p.read_bytes()
    assert len(data) > 2 << 20
    url = upload(server, server.admin_token(), "large", p)
    for _ in range(2):  # from the database, then from memory
        whole = httpx.get(url)
        assert whole.status_code == 200 and whole.content == data
        for first, last in ((100, len(data) - 1), (1000, 700_000), (5, 200_000)):
            part = httpx.get(url, headers={"Range": f"bytes={first}-{last}"})
            assert part.status_code == 206 and part.content == data[first:last + 1]
            assert int(part.headers["content-length"]) == last + 1 - first


def test_the_lookup_is_remembered_while_the_index_is_unchanged(server_factory, conda_packages):
    """A file row that vanishes behind the indexer's back (no IndexChange) is still served: proof that
    the answer came from memory, tied to the publication rather than to the database."""
    server = server_factory()
    p = conda_packages["world"]
    url = upload(server, server.admin_token(), "memo", p)
    assert httpx.get(url).status_code == 200
    with sqlite3.connect(server.home / "taipan.db") as db:
        assert db.execute("DELETE FROM files WHERE filename = ?", (p.name,)).rowcount == 1
    time.sleep(1.5)  # past the poll interval: the publication is checked against the log again
    assert httpx.get(url).content == p.read_bytes()


def test_a_removed_file_stops_with_its_index(server, conda_packages):
    p = conda_packages["hello-1.1"]
    token = server.admin_token()
    url = upload(server, token, "gone", p)
    assert httpx.get(url).status_code == 200 and httpx.get(url).status_code == 200
    remove(server, token, "gone", "conda", "hello", f"noarch/{p.name}")
    index = f"{server.api}/repo/gone/noarch/repodata.json"
    wait_for(lambda: p.name not in httpx.get(index).text, "the index still lists the removed file")
    assert httpx.get(url).status_code == 404
    assert httpx.head(url).status_code == 404


def test_private_channels_tokens_and_revocation(server, conda_packages):
    p = conda_packages["hello"]
    admin = server.admin_token()
    url = upload(server, admin, "secret", p, privacy="private")
    with server.client(admin) as c:
        r = c.post("/account/tokens", json={"name": "dl", "scopes": ["artifact:download"]})
        r.raise_for_status()
        token, token_id = r.json()["token"], r.json()["id"]
    in_path = url.replace("/api/repo/", f"/api/repo/t/{token}/")
    basic = {"Authorization": "Basic " + base64.b64encode(f"{token}:x-auth-token".encode()).decode()}
    for _ in range(3):
        assert httpx.get(in_path).content == p.read_bytes()
        assert httpx.get(url, headers=basic).content == p.read_bytes()
        assert httpx.get(url, headers={"X-Auth": token}).status_code == 200
        anonymous = httpx.get(url)
        assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
        assert httpx.get(url, headers={"X-Auth": "not-a-token"}).status_code in (401, 404)
        assert httpx.get(in_path).headers["cache-control"].startswith("private")
    with server.client(admin) as c:
        assert c.delete(f"/account/tokens/{token_id}").status_code == 204
    assert httpx.get(in_path).status_code in (401, 404)
    assert httpx.get(url, headers=basic).status_code in (401, 404)


def test_a_channel_made_private_stops_anonymous_downloads(server, conda_packages):
    p = conda_packages["world"]
    admin = server.admin_token()
    url = upload(server, admin, "closing", p)
    for _ in range(3):
        assert httpx.get(url).status_code == 200
    with server.client(admin) as c:
        c.put("/channels/closing", json={"privacy": "private"}).raise_for_status()
    wait_for(lambda: httpx.get(url).status_code == 401, "a private channel still serves anonymous callers", 5)
    assert httpx.get(url, headers={"X-Auth": admin}).status_code == 200


def test_downloads_are_counted_once_per_get_from_byte_zero(server, conda_packages):
    p = conda_packages["hello"]
    admin = server.admin_token()
    channel = f"count-{uuid.uuid4().hex[:6]}"
    url = upload(server, admin, channel, p)
    etag = httpx.get(url).headers["etag"]  # 1
    httpx.get(url)  # 2
    httpx.get(url, headers={"Range": "bytes=0-99"})  # 3: starts at byte 0
    httpx.get(url, headers={"Range": "bytes=100-"})  # a resumed transfer: not counted
    httpx.head(url)
    httpx.get(url, headers={"If-None-Match": etag})  # 304: nothing sent

    def count() -> int:
        with server.client(admin) as c:
            items = c.get(f"/channels/{channel}/artifacts/conda/hello/files").json()["items"]
        return next(f["download_count"] for f in items if f["ckey"] == f"noarch/{p.name}")

    wait_for(lambda: count() >= 3, "the downloads were not counted")
    time.sleep(1.5)  # later batches add nothing
    assert count() == 3


def test_offload_hands_packages_and_whole_index_files_to_the_front_server(server_factory, conda_packages):
    server = server_factory({"TAIPAN_SERVER__OFFLOAD": "x-sendfile"})
    p = conda_packages["hello"]
    url = upload(server, server.admin_token(), "handed", p)
    blobs = server.home / "blobs"
    for _ in range(2):
        got = httpx.get(url)
        assert got.status_code == 200 and got.content == b"" and got.headers["etag"].strip('"') in got.headers[
            "x-sendfile"]
        assert open(got.headers["x-sendfile"], "rb").read() == p.read_bytes()
        assert httpx.get(url, headers={"If-None-Match": got.headers["etag"]}).status_code == 304
    subdir = url.rsplit("/", 1)[0]
    handed = httpx.get(f"{subdir}/repodata_shards.msgpack.zst")  # a whole index file, one blob
    assert handed.content == b"" and handed.headers["x-sendfile"].startswith(str(blobs))
    # Files in segments (repodata.json, its .zst: its zstd coding) and codings made on demand (gzip)
    # are sent by Taipan.
    for coding in ("zstd", "gzip"):
        made = httpx.get(f"{subdir}/repodata.json", headers={"Accept-Encoding": coding})
        assert made.headers["content-encoding"] == coding and "x-sendfile" not in made.headers
        assert p.name in made.json()["packages.conda"]


def test_python_distributions_take_the_same_path(server_factory, python_dists):
    server = server_factory()
    wheel = python_dists["hello-wheel"]
    data = wheel.read_bytes()
    token = server.admin_token()
    with server.client(token) as c:
        c.post("/channels", json={"name": "wheels"}).raise_for_status()
        c.post("/channels/wheels/artifacts", files={"content": (wheel.name, data)}).raise_for_status()
    url = f"{server.api}/repo/wheels/simple/pyhello/{wheel.name}"
    for _ in range(3):
        assert httpx.get(url).content == data
        part = httpx.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]
    remove(server, token, "wheels", "python", "pyhello", f"simple/pyhello/{wheel.name}")
    page = f"{server.api}/repo/wheels/simple/pyhello/"
    wait_for(lambda: wheel.name not in httpx.get(page).text, "the project page still lists the removed wheel")
    assert httpx.get(url).status_code == 404
