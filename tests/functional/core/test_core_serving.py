"""Conda channel serving: consistency of every index file, conditional requests, HEAD and Range."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import uuid

import httpx
import msgpack
import pytest
import zstandard

from taipan.domain.names import KNOWN_SUBDIRS


def dzst(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@pytest.fixture(scope="module")
def channel(taipan_server, conda_packages) -> str:
    name = f"serve-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        for key in ("hello", "hello-1.1", "world"):
            p = conda_packages[key]
            c.post(f"/channels/{name}/artifacts", files={"content": (p.name, p.read_bytes())},
                   data={"filetype": "conda1"}).raise_for_status()
    return f"{taipan_server.api}/repo/{name}"


def test_derived_files_match_repodata_json(channel):
    repodata = httpx.get(f"{channel}/noarch/repodata.json").json()
    assert set(repodata["packages.conda"]) == {"hello-1.0-0.conda", "hello-1.1-0.conda"}
    assert json.loads(dzst(httpx.get(f"{channel}/noarch/repodata.json.zst").content)) == repodata
    assert json.loads(bz2.decompress(httpx.get(f"{channel}/noarch/repodata.json.bz2").content)) == repodata
    current = httpx.get(f"{channel}/noarch/current_repodata.json").json()
    assert set(current["packages.conda"]) == {"hello-1.1-0.conda"}
    record = repodata["packages.conda"]["hello-1.0-0.conda"]
    assert record["name"] == "hello" and record["subdir"] == "noarch" and len(record["sha256"]) == 64


def test_shards_decode_to_the_same_records(channel):
    index = msgpack.unpackb(dzst(httpx.get(f"{channel}/noarch/repodata_shards.msgpack.zst").content))
    assert index["info"]["subdir"] == "noarch"
    assert set(index["shards"]) == {"hello"}
    repodata = httpx.get(f"{channel}/noarch/repodata.json").json()
    digest = index["shards"]["hello"].hex()
    raw = httpx.get(f"{channel}/noarch/shards/{digest}.msgpack.zst").content
    assert hashlib.sha256(raw).hexdigest() == digest
    shard = msgpack.unpackb(dzst(raw))
    for fn, rec in shard["packages.conda"].items():
        rec = {**rec, "sha256": rec["sha256"].hex(), "md5": rec["md5"].hex()}
        assert rec == repodata["packages.conda"][fn]
    assert set(shard["packages.conda"]) == set(repodata["packages.conda"])


def test_conditional_requests_return_304(channel):
    for name in ("repodata.json", "repodata.json.zst", "repodata_shards.msgpack.zst",
                 "current_repodata.json", "repodata.json.bz2"):
        first = httpx.get(f"{channel}/noarch/{name}")
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert etag.startswith('"') and not etag.startswith("W/")
        again = httpx.get(f"{channel}/noarch/{name}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        since = httpx.get(f"{channel}/noarch/{name}", headers={"If-Modified-Since": modified})
        assert since.status_code == 304
        other = httpx.get(f"{channel}/noarch/{name}", headers={"If-None-Match": '"other"'})
        assert other.status_code == 200 and other.content == first.content


@pytest.mark.parametrize("coding", ["identity", "gzip", "zstd"])
def test_answers_from_memory_equal_the_full_path(channel, coding):
    """Once a publication is built, GETs and HEADs are answered from memory before any routing; a
    request with only If-Modified-Since (an old date) takes the full path: both must agree on the
    status, bytes and headers, in every coding."""
    keep = ("content-type", "content-length", "content-encoding", "etag", "last-modified", "vary",
            "cache-control")
    index = msgpack.unpackb(dzst(httpx.get(f"{channel}/linux-64/repodata_shards.msgpack.zst").content))
    shard = f"shards/{index['shards']['world'].hex()}.msgpack.zst"
    for name in ("repodata.json", "repodata_shards.msgpack.zst", "current_repodata.json", shard):
        url = f"{channel}/linux-64/{name}"
        with httpx.Client(headers={"Accept-Encoding": coding}) as c:
            c.get(url)
            full = c.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
            answers = [full, c.get(url), c.head(url)]
        first = answers[0]
        assert first.status_code == 200
        for r in answers[1:]:
            assert r.status_code == 200
            assert {k: r.headers.get(k) for k in keep} == {k: first.headers.get(k) for k in keep}
        assert answers[1].content == first.content and answers[2].content == b""


def test_etag_changes_when_the_index_changes(taipan_server, channel, package_builder):
    before = httpx.get(f"{channel}/noarch/repodata.json")
    pkg = package_builder("extra", "0.1", "noarch")
    name = channel.rsplit("/", 1)[1]
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post(f"/channels/{name}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
    after = httpx.get(f"{channel}/noarch/repodata.json", headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200 and "extra-0.1-0.conda" in after.json()["packages.conda"]
    with taipan_server.client(taipan_server.admin_token()) as c:
        r = c.put(f"/channels/{name}/artifacts/bulk",
                  json={"action": "delete", "items": [{"name": "extra", "family": "conda"}]})
        assert r.status_code == 202
    gone = httpx.get(f"{channel}/noarch/repodata.json")
    assert "extra-0.1-0.conda" not in gone.json()["packages.conda"]


def test_head_matches_get(channel, conda_packages):
    for path in ("noarch/repodata.json", "noarch/repodata.json.zst", f"noarch/{conda_packages['hello'].name}"):
        for coding in ("identity", "gzip", "zstd"):
            headers = {"Accept-Encoding": coding}
            with httpx.stream("GET", f"{channel}/{path}", headers=headers) as get:
                raw = b"".join(get.iter_raw())
            head = httpx.head(f"{channel}/{path}", headers=headers)
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == str(len(raw))
            assert head.headers["etag"] == get.headers["etag"]


def test_index_files_in_the_content_coding_the_client_asks_for(channel):
    url = f"{channel}/noarch/repodata.json"
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.headers["vary"] == "Accept-Encoding"
    etags = {plain.headers["etag"]}
    for accept, coding, decode in (("gzip, deflate", "gzip", gzip.decompress),
                                   ("gzip, deflate, br, zstd", "zstd", dzst),
                                   ("zstd;q=0, gzip;q=0.5", "gzip", gzip.decompress)):
        with httpx.stream("GET", url, headers={"Accept-Encoding": accept}) as r:
            raw = b"".join(r.iter_raw())
        assert r.headers["content-encoding"] == coding and r.headers["vary"] == "Accept-Encoding"
        assert decode(raw) == plain.content and len(raw) < len(plain.content)
        etags.add(r.headers["etag"])
        again = httpx.get(url, headers={"Accept-Encoding": accept, "If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.headers["etag"] == r.headers["etag"]
        # The identity ETag does not revalidate the compressed representation.
        assert httpx.get(url, headers={"Accept-Encoding": accept,
                                       "If-None-Match": plain.headers["etag"]}).status_code == 200
    assert len(etags) == 3
    # Already compressed files are sent as they are.
    zst = httpx.get(f"{channel}/noarch/repodata.json.zst", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in zst.headers


def test_range_on_package_files(channel, conda_packages):
    data = conda_packages["hello"].read_bytes()
    url = f"{channel}/noarch/{conda_packages['hello'].name}"
    full = httpx.get(url)
    assert full.content == data and full.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    part = httpx.get(url, headers={"Range": "bytes=10-99"})
    assert part.status_code == 206 and part.content == data[10:100]
    assert part.headers["content-range"] == f"bytes 10-99/{len(data)}"
    assert httpx.get(url, headers={"If-None-Match": full.headers["etag"]}).status_code in (200, 304)


def test_every_known_subdir_answers(channel):
    for subdir in KNOWN_SUBDIRS:
        r = httpx.get(f"{channel}/{subdir}/repodata.json")
        assert r.status_code == 200
        assert r.json()["info"]["subdir"] == subdir
    # read as a subchannel that does not exist: answered like a hidden one (401 for anonymous)
    assert httpx.get(f"{channel}/not-a-subdir/repodata.json").status_code == 401


def test_channeldata(channel):
    data = httpx.get(f"{channel}/channeldata.json").json()
    assert data["packages"]["hello"]["version"] == "1.1"
    assert set(data["subdirs"]) == {"noarch", "linux-64"}
    assert data["packages"]["world"]["subdirs"] == ["linux-64"]


def test_channeldata_is_a_publication_with_codings(taipan_server, channel, package_builder):
    """Built once per change (not per request), offered in gzip and zstd with an ETag per coding,
    and rebuilt as soon as this server takes an upload to the channel."""
    url = f"{channel}/channeldata.json"
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.headers["vary"] == "Accept-Encoding" and "content-encoding" not in plain.headers
    gz = httpx.get(url, headers={"Accept-Encoding": "gzip"})
    zst = httpx.get(url, headers={"Accept-Encoding": "zstd"})
    assert gz.headers["content-encoding"] == "gzip" and zst.headers["content-encoding"] == "zstd"
    assert json.loads(gz.content) == json.loads(zst.content) == plain.json()  # httpx decodes both
    etags = {plain.headers["etag"], gz.headers["etag"], zst.headers["etag"]}
    assert len(etags) == 3
    for r, coding in ((plain, "identity"), (gz, "gzip"), (zst, "zstd")):
        again = httpx.get(url, headers={"Accept-Encoding": coding, "If-None-Match": r.headers["etag"]})
        assert again.status_code == 304 and again.headers["etag"] == r.headers["etag"]
    pkg = package_builder("cdnew", "2.0", "linux-64")
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post(f"/channels/{channel.rsplit('/', 1)[1]}/artifacts",
               files={"content": (pkg.name, pkg.read_bytes())}).raise_for_status()
    after = httpx.get(url, headers={"Accept-Encoding": "identity", "If-None-Match": plain.headers["etag"]})
    assert after.status_code == 200 and after.json()["packages"]["cdnew"]["version"] == "2.0"
    assert after.headers["etag"] != plain.headers["etag"]


def test_missing_files_404(channel):
    assert httpx.get(f"{channel}/noarch/nothere-1-0.conda").status_code == 404
    assert httpx.get(f"{channel}/noarch/shards/{'0' * 64}.msgpack.zst").status_code == 404
    # a missing channel is answered like a hidden one: 401 for anonymous callers
    assert httpx.get(channel.rsplit("/", 1)[0] + "/no-such-channel/noarch/repodata.json").status_code == 401


def test_frozen_channel_publishes_nothing_until_unfrozen(taipan_server, package_builder):
    name = f"frozen-{uuid.uuid4().hex[:8]}"
    repo = f"{taipan_server.api}/repo/{name}/noarch/repodata.json"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        assert httpx.get(repo).json()["packages.conda"] == {}
        c.put(f"/channels/{name}", json={"frozen": True}).raise_for_status()
        pkg = package_builder("icy", "1.0", "noarch")
        c.post(f"/channels/{name}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
        assert httpx.get(repo).json()["packages.conda"] == {}
        c.put(f"/channels/{name}", json={"frozen": False}).raise_for_status()
        assert list(httpx.get(repo).json()["packages.conda"]) == ["icy-1.0-0.conda"]


def test_a_large_index_file_from_memory_arrives_whole(taipan_server, package_builder):
    """A body from memory above the fast path's piece size (256 KiB) is sent in pieces: the client
    gets exactly the bytes the full path sends, with a Content-Length that matches."""
    name = f"large-{uuid.uuid4().hex[:8]}"
    depends = [f"dependency-{i:05d}-with-a-name-long-enough-to-grow-the-record >=1.0" for i in range(6000)]
    pkg = package_builder("wide", "1.0", "noarch", depends=depends)
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        c.post(f"/channels/{name}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
    url = f"{taipan_server.api}/repo/{name}/noarch/repodata.json"
    with httpx.Client(headers={"Accept-Encoding": "identity"}) as c:
        full = c.get(url, headers={"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
        fast = [c.get(url) for _ in range(3)]
    assert full.status_code == 200 and len(full.content) > 256 * 1024  # two pieces or more
    assert len(json.loads(full.content)["packages.conda"][pkg.name]["depends"]) == 6000
    for r in fast:
        assert r.status_code == 200 and r.content == full.content
        assert int(r.headers["content-length"]) == len(r.content)
