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
from mirror_upstream import Pkg, UpstreamServer, build_channel, upstream_records

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


def rerun(server: Any, channel: str, before: dict[str, Any]) -> dict[str, Any]:
    with api(server) as c:
        assert c.put(f"/channels/{channel}/mirrors/m", json={"run_now": True}).status_code in (200, 202)
    done = before["sync_state"]["finished_at"]
    return wait_state(server, channel, "m", timeout=120,
                      pred=lambda m: m["sync_state"].get("finished_at") not in (None, done))


def test_a_run_with_nothing_new_in_its_shards_ends_unchanged(mirror_server, sharded_template: Path,
                                                             tmp_path: Path) -> None:
    root = tmp_path / "up"
    shutil.copytree(sharded_template, root)
    upstream = UpstreamServer(root).start()
    filters = {"only_specs": ["app"], "include_dependencies": True}
    try:
        channel, first = mirror(mirror_server, upstream, filters)
        served = served_all(mirror_server, channel)
        assert served == oracle(root, filters) and not first["sync_state"].get("upstream_unchanged")

        # Nothing new upstream: the shard indexes are read, no shard, and the run ends there.
        upstream.hits.clear()
        again = rerun(mirror_server, channel, first)
        assert again["sync_state"]["upstream_unchanged"] is True and again["sync_state"]["index_source"] == "shards"
        assert sorted(k for k in upstream.hits if k.startswith("GET ")) == ["GET /channeldata.json", *(
            f"GET /{sd}/repodata_shards.msgpack.zst" for sd in ("linux-64", "noarch", "osx-arm64"))]
        assert again["sync_state"]["count"] == first["sync_state"]["count"]
        assert served_all(mirror_server, channel) == served

        # A package outside the closure changes: the indexes differ, the closure's shards do not.
        build_channel(root, (Pkg("torch", "2.2", license="BSD-3-Clause", day="2024-08-01"),),
                      duplicate_legacy=False, shards=True)
        upstream.hits.clear()
        third = rerun(mirror_server, channel, again)
        assert third["sync_state"]["upstream_unchanged"] is True
        assert not [k for k in upstream.hits if "/shards/" in k]

        # A dependency gets a new version: its shard changed, the run reads the shards and publishes it.
        build_channel(root, (Pkg("zlib", "1.3.2", license="Zlib", day="2024-08-02"),),
                      duplicate_legacy=False, shards=True)
        upstream.hits.clear()
        fourth = rerun(mirror_server, channel, third)
        assert not fourth["sync_state"].get("upstream_unchanged")
        assert len([k for k in upstream.hits if "/shards/" in k]) == 4 and repodata_hits(upstream) == []
        served = served_all(mirror_server, channel)
        assert "zlib-1.3.2-h0_0.conda" in served["linux-64"] and served == oracle(root, filters)

        # ... and the run after that, with nothing new again, ends unchanged.
        fifth = rerun(mirror_server, channel, fourth)
        assert fifth["sync_state"]["upstream_unchanged"] is True
    finally:
        upstream.stop()
