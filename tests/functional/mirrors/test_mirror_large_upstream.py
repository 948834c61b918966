"""A passive mirror of a moderately large synthetic upstream (tens of thousands of records, .tar.bz2
twins, malformed records, ``info`` after the packages) goes through the streaming path (the upstream
repodata is stream-parsed from a spooled file, never loaded whole) and publishes exactly what the
in-memory filter engine (``filters.select`` over the whole JSON, as mirrors worked before) selects,
with the same counts -- on the first run and on a re-sync after the upstream changed, with
``only_specs`` + ``include_dependencies`` (the closure's candidates spooled to disk), and with CVE
filters (the CVE store asked by batches of names)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import zstandard
from mirror_upstream import UpstreamServer

from conftest import api, served_all, unique, wait_state
from taipan.db.engine import make_engine, make_sessionmaker
from taipan.domain import filters as flt
from taipan.services import cve_enforcement
from taipan.settings import Settings

CVE_DATA = Path(__file__).parents[2] / "data" / "cve"

LICENSES = ["MIT", "BSD-3-Clause", "GPL-3.0-or-later", "Apache-2.0", "LGPL-2.1", ""]
FILTERS = {"exclude_licenses": ["gpl3"], "exclude_specs": ["pkg3"], "include_specs": ["pkg3 1.2"],
           "date_from": "2023-11-20", "date_to": "2024-06-30"}


def synthetic(subdir: str, n: int, seed: int = 0) -> dict[str, Any]:
    names = max(1, n // 20)
    conda: dict[str, Any] = {}
    legacy: dict[str, Any] = {}
    for i in range(n):
        name, minor = f"pkg{i % names}", i // names
        stem = f"{name}-1.{minor}-h{i + seed:08x}_0"
        digest = hashlib.sha256(stem.encode()).hexdigest()
        rec = {"name": name, "version": f"1.{minor}", "build": f"h{i + seed:08x}_0", "build_number": 0,
               "subdir": subdir, "depends": [f"pkg{(i * 7) % names} >=1.0", "__glibc >=2.17"],
               "license": LICENSES[i % len(LICENSES)], "timestamp": 1700000000000 + i * 60_000,
               "sha256": digest, "md5": digest[:32], "size": 1000 + i % 5000}
        if i % 3:
            conda[stem + ".conda"] = rec
        if i % 3 != 1:  # a third only .tar.bz2, a third both (the .tar.bz2 twin is dropped)
            legacy[stem + ".tar.bz2"] = {**rec, "sha256": digest[::-1]}
    legacy["broken-1.0-0.tar.bz2"] = {"version": "1.0"}  # no name: skipped, not counted
    conda["alsobroken-1.0-0.conda"] = ["not", "a", "record"]
    # "info" after the packages: a streaming parser must still find base_url
    return {"packages": legacy, "packages.conda": conda, "repodata_version": 1,
            "info": {"subdir": subdir, "base_url": f"https://files.invalid/{subdir}"}}


def publish(root: Path, repodata: dict[str, dict[str, Any]]) -> None:
    for sd, rd in repodata.items():
        (root / sd).mkdir(parents=True, exist_ok=True)
        raw = orjson.dumps(rd)
        (root / sd / "repodata.json").write_bytes(raw)
        (root / sd / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))


def oracle(repodata: dict[str, dict[str, Any]], filters: dict[str, Any], channel: dict[str, Any] | None = None,
           cve_of: flt.CveOf | None = None) -> flt.Selection:
    """The in-memory engine over the whole JSON, as a mirror run selected before streaming."""
    records = {sd: {fn: r for section in ("packages", "packages.conda") for fn, r in rd[section].items()
                    if isinstance(r, dict) and isinstance(r.get("name"), str) and r.get("version") is not None}
               for sd, rd in repodata.items()}
    return flt.select(records, flt.compile_filters(filters, channel), cve_of)


def mirror_once(server: Any, root: Path, filters: dict[str, Any], channel_filters: dict[str, Any] | None = None,
                ) -> dict[str, Any]:
    """A passive mirror of the upstream at ``root`` into a new channel; the mirror when completed."""
    upstream = UpstreamServer(root).start()
    channel = unique("big")
    try:
        with api(server) as c:
            assert c.post("/channels", json={"name": channel}).status_code == 201
            if channel_filters:
                r = c.put(f"/channels/{channel}", json={"filters": channel_filters})
                assert r.status_code == 200, r.text
            r = c.post(f"/channels/{channel}/mirrors", json={
                "mirror_name": "big", "source_root": upstream.url, "mirror_mode": "passive",
                "run_now": True, "filters": filters})
            assert r.status_code == 201, r.text
        return {**wait_state(server, channel, "big", timeout=180), "channel": channel}
    finally:
        upstream.stop()


def check(server: Any, channel: str, m: dict[str, Any], want: flt.Selection) -> None:
    state = m["sync_state"]
    assert state["index_parse"] == "stream"
    assert served_all(server, channel, ("linux-64", "noarch")) == {
        sd: set(want.kept.get(sd, {})) for sd in ("linux-64", "noarch")}
    assert state["upstream_records"] == want.evaluated and state["selected"] == want.kept_count
    for level in ("mirror_filtered", "channel_filtered"):
        assert state["count"][level] == want.counts[level], level
    assert state["count"]["passive"] == want.kept_count and state["count"]["failed"] == 0


def test_large_upstream_streams_and_selects_like_the_memory_engine(mirror_server, tmp_path: Path) -> None:
    repodata = {"linux-64": synthetic("linux-64", 24_000), "noarch": synthetic("noarch", 3_000, seed=1 << 20)}
    root = tmp_path / "big-upstream"
    publish(root, repodata)
    upstream = UpstreamServer(root).start()
    channel = unique("big")
    try:
        with api(mirror_server) as c:
            assert c.post("/channels", json={"name": channel}).status_code == 201
            r = c.post(f"/channels/{channel}/mirrors", json={
                "mirror_name": "big", "source_root": upstream.url, "mirror_mode": "passive",
                "run_now": True, "filters": FILTERS})
            assert r.status_code == 201, r.text
        m = wait_state(mirror_server, channel, "big", timeout=180)
        first = oracle(repodata, FILTERS)
        assert first.kept_count > 5000 and first.counts["mirror_filtered"]["duplicated_legacy_conda"] > 1000
        check(mirror_server, channel, m, first)
        with api(mirror_server) as c:
            rd = c.get(f"{mirror_server.url}/api/repo/{channel}/linux-64/repodata.json").json()
        kept = next(iter(first.kept["linux-64"].items()))
        served = {**rd["packages"], **rd["packages.conda"]}[kept[0]]
        assert served["sha256"] == kept[1]["sha256"] and served["depends"] == kept[1]["depends"]

        # The upstream changes: records go, records change, records come; re-sync with other filters.
        linux = repodata["linux-64"]
        for fn in list(linux["packages.conda"])[:2000]:
            del linux["packages.conda"][fn]
        for rec in [r for r in linux["packages.conda"].values() if isinstance(r, dict)][-500:]:
            rec["depends"] = [*rec["depends"], "libnew >=1"]
        for rec in list(linux["packages"].values())[-300:]:
            if isinstance(rec, dict) and "sha256" in rec:
                rec["sha256"] = hashlib.sha256(rec["sha256"].encode()).hexdigest()
        linux["packages.conda"].update(synthetic("linux-64", 1000, seed=1 << 24)["packages.conda"])
        publish(root, repodata)
        filters2 = {**FILTERS, "exclude_licenses": ["gpl3", "lgpl"]}
        with api(mirror_server) as c:
            r = c.put(f"/channels/{channel}/mirrors/big", json={"filters": filters2, "run_now": True})
            assert r.status_code == 202, r.text
        m = wait_state(mirror_server, channel, "big", timeout=180,
                       pred=lambda x: x["sync_state"].get("finished_at") != m["sync_state"]["finished_at"])
        second = oracle(repodata, filters2)
        check(mirror_server, channel, m, second)
        gone = sum(len(set(first.kept[sd]) - set(second.kept.get(sd, {}))) for sd in first.kept)
        assert gone > 2000 and m["sync_state"]["count"]["removed"] == gone
        with api(mirror_server) as c:
            rd = c.get(f"{mirror_server.url}/api/repo/{channel}/linux-64/repodata.json").json()
        served = {**rd["packages"], **rd["packages.conda"]}
        want = second.kept["linux-64"]
        changed = [fn for fn, rec in want.items() if "libnew >=1" in rec["depends"]]
        assert changed and all(served[fn]["depends"] == want[fn]["depends"] for fn in changed)
        assert all(served[fn]["sha256"] == want[fn]["sha256"] for fn in want)
    finally:
        upstream.stop()


def test_dependency_closure_streams_and_selects_like_the_memory_engine(mirror_server, tmp_path: Path) -> None:
    repodata = {"linux-64": synthetic("linux-64", 8_000), "noarch": synthetic("noarch", 2_000, seed=1 << 20)}
    publish(tmp_path / "up", repodata)
    filters = {"only_specs": ["pkg3", "pkg17 >=1.10", "pkg2*"], "include_dependencies": True,
               "exclude_licenses": ["gpl3"]}
    m = mirror_once(mirror_server, tmp_path / "up", filters)
    want = oracle(repodata, filters)
    without = oracle(repodata, {**filters, "include_dependencies": False})
    assert want.kept_count > 2 * without.kept_count > 0  # the closure pulls in many other packages
    assert want.counts["mirror_filtered"]["only_specs"] > 1000
    check(mirror_server, m["channel"], m, want)


def cve_upstream(subdir: str) -> dict[str, Any]:
    """Packages some of the sample CVEs affect (several versions each, inside and outside the affected
    ranges) among thousands of others, in more than one batch of names."""
    versions = {"openssl": ["1.1.1s", "1.1.1t", "3.0.5", "3.0.8"], "libcurl": ["7.8", "8.3.0", "8.4.0"],
                "requests": ["2.2.1", "2.19.0", "2.31.0"], "django": ["4.1.8", "4.2.3"],
                "sqlite": ["3.39.1", "3.40.0"], "tensorflow": ["2.3.1", "2.5.0", "2.9.0"],
                "setuptools": ["65.0", "68.0"]}
    conda: dict[str, Any] = {}
    for i in range(6000):
        name = list(versions)[i % len(versions)] if i % 3 == 0 else f"other{i % 1500}"
        version = versions[name][(i // 3) % len(versions[name])] if name in versions else f"1.{i}"
        build = f"h{i:06x}_0"
        digest = hashlib.sha256(f"{subdir}{name}{build}".encode()).hexdigest()
        conda[f"{name}-{version}-{build}.conda"] = {
            "name": name, "version": version, "build": build, "build_number": 0, "subdir": subdir,
            "depends": [], "license": "MIT", "timestamp": 1700000000000 + i, "sha256": digest,
            "md5": digest[:32], "size": 100}
    return {"packages": {}, "packages.conda": conda, "repodata_version": 1, "info": {"subdir": subdir}}


def test_cve_filters_stream_and_select_like_the_memory_engine(server_factory, tmp_path: Path) -> None:
    server = server_factory(home=tmp_path / "home")
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "cve", "import", str(CVE_DATA)], check=True,
                   env={**os.environ, "TAIPAN_HOME": str(server.home)}, capture_output=True, timeout=120)
    repodata = {"linux-64": cve_upstream("linux-64"), "noarch": cve_upstream("noarch")}
    publish(tmp_path / "up", repodata)
    filters, channel_filters = {"exclude_non_curated_cve": True}, {"cve_score_threshold": 9.0}
    m = mirror_once(server, tmp_path / "up", filters, channel_filters)
    sessions = make_sessionmaker(make_engine(Settings(home=server.home).database_url))
    with sessions() as db:  # every upstream name at once, as mirror runs asked before streaming
        names = {r["name"] for rd in repodata.values() for r in rd["packages.conda"].values()}
        want = oracle(repodata, filters, channel_filters, cve_enforcement.assessor(db, "conda", names))
    assert want.counts["mirror_filtered"]["cve"] > 0 and want.counts["channel_filtered"]["cve"] > 0
    assert want.kept_count > 5000
    check(server, m["channel"], m, want)
