"""repodata.json is published in segments (buckets of package names) and streamed from the blob
store: real clients read what is served, plain and gzip-coded (one gzip member made of the parts'
deflate streams), and HEAD / Content-Length agree with the bytes."""

from __future__ import annotations

import asyncio
import gzip
import json
import uuid

import httpx
import rattler
import requests
import urllib3

NAMES = [f"seg{i}" for i in range(6)]


def _channel(taipan_server, package_builder, conda_packages) -> str:
    name = f"seg-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        # Several names (several buckets), both package formats.
        for pkg in [*(package_builder(n, "1.0", "noarch") for n in NAMES), conda_packages["hello"],
                    package_builder("tarball", "1.0", "noarch", fmt=".tar.bz2")]:
            c.post(f"/channels/{name}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
                   data={"filetype": "conda1"}).raise_for_status()
    return f"{taipan_server.api}/repo/{name}"


def test_requests_and_urllib3_read_the_gzip_coded_repodata(taipan_server, package_builder, conda_packages):
    channel = _channel(taipan_server, package_builder, conda_packages)
    url = f"{channel}/noarch/repodata.json"
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    doc = json.loads(plain.content)
    assert set(doc["packages.conda"]) >= {f"{n}-1.0-0.conda" for n in NAMES} | {"hello-1.0-0.conda"}
    assert list(doc["packages"]) == ["tarball-1.0-0.tar.bz2"]
    assert int(plain.headers["content-length"]) == len(plain.content)
    # conda's client: requests (urllib3 decodes gzip).
    r = requests.get(url, headers={"Accept-Encoding": "gzip, deflate"})
    assert r.headers["Content-Encoding"] == "gzip" and r.json() == doc
    raw = urllib3.request("GET", url, headers={"Accept-Encoding": "gzip"}, decode_content=False)
    assert raw.headers["Content-Encoding"] == "gzip" and gzip.decompress(raw.data) == plain.content
    assert int(raw.headers["Content-Length"]) == len(raw.data)
    # HEAD says the same lengths without a body; a matching ETag is a 304.
    head = httpx.head(url, headers={"Accept-Encoding": "gzip"})
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(raw.data)
    assert head.headers["etag"] == raw.headers["ETag"] != plain.headers["etag"]
    assert httpx.get(url, headers={"If-None-Match": plain.headers["etag"],
                                   "Accept-Encoding": "identity"}).status_code == 304
    current = httpx.get(f"{channel}/noarch/current_repodata.json", headers={"Accept-Encoding": "gzip"})
    assert current.headers["content-encoding"] == "gzip" and current.json()["packages"] == doc["packages"]


def test_rattler_reads_the_segmented_repodata_without_zstd_or_shards(taipan_server, package_builder,
                                                                      conda_packages, tmp_path):
    channel = _channel(taipan_server, package_builder, conda_packages)
    # What reqwest asks for: the gzip-coded stream.
    assert httpx.get(f"{channel}/noarch/repodata.json",
                     headers={"Accept-Encoding": "gzip, br"}).headers["content-encoding"] == "gzip"

    async def query(config: rattler.SourceConfig) -> set[str]:
        gateway = rattler.Gateway(cache_dir=str(tmp_path / uuid.uuid4().hex), default_config=config)
        found = await gateway.query([rattler.Channel(channel)], [rattler.Subdir("noarch")],
                                    [*NAMES, "hello", "tarball"], recursive=False)
        return {r.file_name for records in found for r in records}

    expected = {f"{n}-1.0-0.conda" for n in NAMES} | {"hello-1.0-0.conda", "tarball-1.0-0.tar.bz2"}
    plain = rattler.SourceConfig(zstd_enabled=False, bz2_enabled=False, sharded_enabled=False)
    assert asyncio.run(query(plain)) == expected
    # And through repodata.json.zst (one frame), and through the shards.
    assert asyncio.run(query(rattler.SourceConfig(sharded_enabled=False))) == expected
    assert asyncio.run(query(rattler.SourceConfig())) == expected

