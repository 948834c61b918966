"""An upstream that offers CEP-16 shards (indexed by rattler with shards) and a mirror whose only_specs
name packages exactly: the run fetches the shard indexes and the shards of those names (and of their
dependencies' names) instead of any repodata.json, and publishes what the in-memory engine selects over
the upstream's full repodata.json; passive downloads through the mirror are the upstream's bytes. A glob
in only_specs, or an upstream without shards, takes the whole repodata."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from mirror_upstream import UpstreamServer, build_channel, upstream_records

from conftest import api, served_all, unique, wait_state
from taipan.domain import filters as flt


@pytest.fixture(scope="module")
def sharded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_channel(tmp_path_factory.mktemp("sharded") / "channel", shards=True)


def mirror(server: Any, upstream: UpstreamServer, filters: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    channel = unique("sh")
    with api(server) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        r = c.post(f"/channels/{channel}/mirrors", json={
            "mirror_name": "m", "source_root": upstream.url, "mirror_mode": "passive", "run_now": True,
            "filters": filters})
        assert r.status_code == 201, r.text
    return channel, wait_state(server, channel, "m", timeout=120)


def oracle(root: Path, filters: dict[str, Any]) -> dict[str, set[str]]:
    sel = flt.select(upstream_records(root), flt.compile_filters(filters))
    return {sd: set(sel.kept.get(sd, {})) for sd in ("linux-64", "noarch", "osx-arm64")}


def repodata_hits(upstream: UpstreamServer) -> list[str]:
    return [k for k in upstream.hits if k.startswith("GET ") and "/repodata.json" in k]


def test_exact_names_fetch_only_their_shards(mirror_server, sharded_template: Path, tmp_path: Path) -> None:
    root = tmp_path / "up"
    shutil.copytree(sharded_template, root)
    upstream = UpstreamServer(root).start()
    try:
        filters = {"only_specs": ["app"], "include_dependencies": True}
        channel, m = mirror(mirror_server, upstream, filters)
        want = oracle(root, filters)
        assert want["noarch"] and len(want["linux-64"]) > 3  # app's closure: libfoo, zlib, pydata
        assert served_all(mirror_server, channel) == want
        assert m["sync_state"]["index_source"] == "shards" and m["sync_state"]["index_parse"] == "stream"
        assert repodata_hits(upstream) == []
        shards = [k for k in upstream.hits if "/shards/" in k]
        # app, libfoo, zlib in linux-64, pydata in noarch: nothing else (no torch, no gplthing ...)
        assert len(shards) == 4 and not any(k.endswith("repodata_shards.msgpack.zst") for k in shards)
        assert all(upstream.hits[f"GET /{sd}/repodata_shards.msgpack.zst"] == 1
                   for sd in ("linux-64", "noarch", "osx-arm64"))
        # the hashes come back as hex, and a passive download through the mirror is the upstream's file
        fn = sorted(want["linux-64"])[0]
        with api(mirror_server) as c:
            rd = c.get(f"{mirror_server.url}/api/repo/{channel}/linux-64/repodata.json").json()
            rec = {**rd["packages"], **rd["packages.conda"]}[fn]
            assert rec == {k: v for k, v in upstream_records(root)["linux-64"][fn].items() if k in rec}
            body = c.get(f"{mirror_server.url}/api/repo/{channel}/linux-64/{fn}").content
        assert hashlib.sha256(body).hexdigest() == rec["sha256"]

        # exact names without their dependencies: only those names' shards
        upstream.hits.clear()
        channel, m = mirror(mirror_server, upstream, {"only_specs": ["torch 2.1", "pd"]})
        assert served_all(mirror_server, channel) == oracle(root, {"only_specs": ["torch 2.1", "pd"]})
        assert len([k for k in upstream.hits if "/shards/" in k]) == 2 and repodata_hits(upstream) == []

        # a glob names no package exactly: the whole repodata
        upstream.hits.clear()
        channel, m = mirror(mirror_server, upstream, {"only_specs": ["lib*"]})
        assert m["sync_state"]["index_source"] == "repodata" and repodata_hits(upstream)
        assert served_all(mirror_server, channel) == oracle(root, {"only_specs": ["lib*"]})
    finally:
        upstream.stop()


def test_without_shards_the_whole_repodata_is_read(mirror_server, upstream: UpstreamServer) -> None:
    channel, m = mirror(mirror_server, upstream, {"only_specs": ["app"], "include_dependencies": True})
    assert m["sync_state"]["index_source"] == "repodata" and repodata_hits(upstream)
    assert served_all(mirror_server, channel) == oracle(upstream.root, {"only_specs": ["app"],
                                                                        "include_dependencies": True})
