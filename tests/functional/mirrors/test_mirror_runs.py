"""Active and passive runs end to end: downloads verified, incremental re-runs, --update, installs
with py-rattler from a passive mirror, stop, and a sync killed mid-way."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import rattler
from mirror_upstream import Pkg, UpstreamServer, build_channel, index, upstream_records, write_repodata

from conftest import api, restart_server, served_all, start_server, unique, wait_state


def package_hits(upstream) -> dict[str, int]:
    return {k.split(" ", 1)[1]: n for k, n in upstream.hits.items()
            if k.startswith("GET") and k.endswith((".conda", ".tar.bz2"))}


def test_active_mirror_incremental_and_update(cli, mirror_server, upstream) -> None:
    channel = unique("active")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "act", "--channel", channel, "--source", upstream.url, "--mode", "active",
            "--run_now", "--subdirs", "linux-64,noarch", "--licenses", "-gpl3")
    m = wait_state(mirror_server, channel, "act")
    served = served_all(mirror_server, channel, ("linux-64", "noarch"))
    want = {sd: {fn for fn, r in recs.items() if r.get("license") != "GPL-3.0-or-later"}
            for sd, recs in upstream_records(upstream.root).items() if sd in ("linux-64", "noarch")}
    want["linux-64"] -= {"torch-2.0-h0_0.tar.bz2", "torch-2.1-h0_0.tar.bz2"}  # legacy twins of .conda files
    assert served == want
    # every selected file was downloaded once, and is served from Taipan with the upstream bytes
    assert set(package_hits(upstream)) == {f"/{sd}/{fn}" for sd, fns in want.items() for fn in fns}
    assert m["sync_state"]["count"]["active"] == sum(len(v) for v in want.values())
    recs = upstream_records(upstream.root)
    with httpx.Client() as c:
        for sd, fns in want.items():
            for fn in fns:
                body = c.get(f"{mirror_server.api}/repo/{channel}/{sd}/{fn}").content
                assert hashlib.sha256(body).hexdigest() == recs[sd][fn]["sha256"]
    assert len(package_hits(upstream)) == sum(len(v) for v in want.values())  # nothing fetched on demand

    # nothing changed upstream: the re-run asks conditionally and stops there
    upstream.hits.clear()
    cli.run("mirror", "--restart", "act", "--channel", channel)
    m = wait_state(mirror_server, channel, "act", pred=lambda m: m["sync_state"].get("finished_at"))
    assert m["sync_state"]["upstream_unchanged"] is True
    assert m["sync_state"]["count"]["active"] == sum(len(v) for v in want.values())
    assert package_hits(upstream) == {} and served_all(mirror_server, channel, ("linux-64", "noarch")) == want

    # upstream changes: one new package, one removed; the re-run fetches only the new file
    build_channel(upstream.root, (Pkg("newpkg", "1.0", day="2024-07-01"),), duplicate_legacy=False)
    (upstream.root / "linux-64" / "apachething-1.0-h0_0.conda").unlink()
    index(upstream.root)
    upstream.hits.clear()
    cli.run("mirror", "--restart", "act", "--channel", channel)
    m = wait_state(mirror_server, channel, "act", pred=lambda m: m["sync_state"].get("finished_at"))
    assert package_hits(upstream) == {"/linux-64/newpkg-1.0-h0_0.conda": 1}
    served = served_all(mirror_server, channel, ("linux-64", "noarch"))
    assert "newpkg-1.0-h0_0.conda" in served["linux-64"]
    assert "apachething-1.0-h0_0.conda" not in served["linux-64"]
    assert m["sync_state"]["count"]["removed"] == 1

    # --update replaces the contents with the new selection
    cli.run("mirror", "--update", "act", "--channel", channel, "--only_spec", "zlib", "--licenses", "",
            "--run_now")
    wait_state(mirror_server, channel, "act", pred=lambda m: m["filters"].get("only_specs") == ["zlib"]
               and m["sync_state"].get("finished_at"))
    assert served_all(mirror_server, channel, ("linux-64", "noarch")) == {
        "linux-64": {"zlib-1.3.1-h0_0.conda", "zlib-1.2.13-h0_0.conda"}, "noarch": set()}


def test_install_from_passive_mirror_fetches_on_demand(cli, mirror_server, upstream, tmp_path) -> None:
    # Packages with bytes of their own: files already in the blob store would be served from it.
    build_channel(upstream.root, salt=unique("salt"))
    channel = unique("passive")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "pm", "--channel", channel, "--source", upstream.url, "--run_now",
            "--only_spec", "app", "--include_dependencies")
    wait_state(mirror_server, channel, "pm")
    assert package_hits(upstream) == {}

    async def solve_install() -> list[str]:
        records = await rattler.solve([rattler.Channel(f"{mirror_server.api}/repo/{channel}")], ["app"],
                                      platforms=["linux-64", "noarch"], virtual_packages=[])
        await rattler.install(records, target_prefix=str(tmp_path / "env"), cache_dir=str(tmp_path / "cache"))
        return sorted(r.file_name for r in records)

    installed = asyncio.run(solve_install())
    assert installed == ["app-1.0-h0_0.conda", "libfoo-2.0-h0_0.conda", "pydata-0.5-pyh0_0.conda",
                         "zlib-1.3.1-h0_0.conda"]
    assert (tmp_path / "env" / "share" / "app" / "data.txt").read_text().startswith("app 1.0")
    # each file arrived from upstream on first request, once, and is now stored
    assert sorted(p.rsplit("/", 1)[1] for p in package_hits(upstream)) == installed
    with api(mirror_server) as c:
        files = c.get(f"/channels/{channel}/artifacts/conda/zlib/files", params={"limit": 10}).json()["items"]
    states = {f["name"]: f["state"] for f in files}
    assert states == {"zlib-1.3.1-h0_0.conda": "active", "zlib-1.2.13-h0_0.conda": "passive"}
    with httpx.Client() as c:
        head = c.head(f"{mirror_server.api}/repo/{channel}/linux-64/zlib-1.2.13-h0_0.conda")
        assert head.status_code == 200 and int(head.headers["content-length"]) > 0
        again = c.get(f"{mirror_server.api}/repo/{channel}/linux-64/zlib-1.3.1-h0_0.conda")
        assert again.status_code == 200
    assert sum(package_hits(upstream).values()) == 4  # served locally the second time


def test_stop_keeps_index(cli, mirror_server, upstream) -> None:
    build_channel(upstream.root, salt=unique("salt"))  # bytes not in the blob store yet
    channel = unique("stop")
    cli.run("channel", "--create", channel)
    # The downloads are held until the run has seen the stop (sync_state.stopping): the CLI calls
    # below, each a new process on a possibly loaded CI machine, all see the run still fetching.
    upstream.gate = threading.Event()
    try:
        cli.run("mirror", "--create", "slow", "--channel", channel, "--source", upstream.url, "--mode", "active",
                "--run_now")
        wait_state(mirror_server, channel, "slow", ("running",),
                   pred=lambda m: m["sync_state"]["current_step_number"] == 4)
        listing = cli.run("mirror", "--list", channel).stdout
        assert "running" in listing and "Fetching files" in listing
        shown = cli.run("mirror", "--show", "slow", "--channel", channel).stdout
        assert "state: running" in shown and "4/5 Fetching files" in shown
        assert "4/5 Fetching files" in cli.run("mirror", "--sync-state", "slow", "--channel", channel).stdout
        cli.run("mirror", "--stop", "slow")
        wait_state(mirror_server, channel, "slow", ("running",), pred=lambda m: m["sync_state"].get("stopping"))
    finally:
        upstream.gate.set()
    m = wait_state(mirror_server, channel, "slow", ("stopped",))
    assert "stopped" in (m["sync_state"]["last_exception"] or "")
    assert served_all(mirror_server, channel) == {"linux-64": set(), "noarch": set(), "osx-arm64": set()}
    out = cli.run("mirror", "--stop", "slow", rc=None)
    assert out.returncode != 0 and "not running" in out.stderr


def scratch(server) -> set[str]:
    """The spooled upstream indexes and planned rows in the blob store's scratch directory."""
    tmp = server.home / "blobs" / "tmp"
    return {p.name for pattern in ("repodata-*", "mirror-plan-*", "shards-*") for p in tmp.glob(pattern)}


def test_stop_during_the_dependency_closure(cli, mirror_server, tmp_path: Path) -> None:
    """A closure that takes minutes: each of 2,000 records of `a` depends on a version of `b` that none
    of the 2,000 records of `b` has, so every `b` record is read back and matched 2,000 times. A stop
    asked while it runs ends the run there (step 3), as stopped, publishing nothing and leaving no
    spooled file behind."""
    n = 2000
    common = {"build": "0", "build_number": 0, "subdir": "linux-64", "size": 1, "md5": "0" * 32,
              "sha256": "0" * 64}
    packages = {f"a-1.{i}-0.conda": {**common, "name": "a", "version": f"1.{i}", "depends": [f"b >=1000.{i}"]}
                for i in range(n)}
    packages.update({f"b-1.{i}-0.conda": {**common, "name": "b", "version": f"1.{i}", "depends": []}
                     for i in range(n)})
    root = tmp_path / "closure"
    (root / "linux-64").mkdir(parents=True)
    write_repodata(root, "linux-64", {"info": {"subdir": "linux-64"}, "packages": {}, "packages.conda": packages,
                                      "repodata_version": 1})
    upstream = UpstreamServer(root).start()
    before = scratch(mirror_server)
    try:
        channel = unique("closure")
        cli.run("channel", "--create", channel)
        cli.run("mirror", "--create", "deps", "--channel", channel, "--source", upstream.url, "--run_now",
                "--subdirs", "linux-64", "--only_spec", "a", "--include_dependencies")
        running = wait_state(mirror_server, channel, "deps", ("running",), timeout=120,
                             pred=lambda m: "dependency_closure" in m["sync_state"])
        assert running["sync_state"]["dependency_closure"] == {"candidates": 2 * n, "done": False}
        cli.run("mirror", "--stop", "deps", "--channel", channel)
        m = wait_state(mirror_server, channel, "deps", ("stopped",), timeout=120)
        st = m["sync_state"]
        assert st["current_step_number"] == 3 and st["dependency_closure"]["done"] is False, st
        assert "stopped" in st["last_exception"] and st["last_error_category"] == "stopped"
        assert served_all(mirror_server, channel, ("linux-64",)) == {"linux-64": set()}
        assert scratch(mirror_server) <= before
    finally:
        upstream.stop()


def test_killed_sync_serves_old_index_then_resumes(upstream, tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    channel = unique("kill")
    try:
        with api(server) as c:
            assert c.post("/channels", json={"name": channel}).status_code == 201
            r = c.post(f"/channels/{channel}/mirrors", json={
                "mirror_name": "k", "source_root": upstream.url, "mirror_mode": "active", "run_now": True,
                "filters": {"only_specs": ["zlib"]}})
            assert r.status_code == 201, r.text
        wait_state(server, channel, "k")
        before = served_all(server, channel)
        assert before["linux-64"] == {"zlib-1.3.1-h0_0.conda", "zlib-1.2.13-h0_0.conda"}
        upstream.delay = 0.4
        with api(server) as c:
            r = c.put(f"/channels/{channel}/mirrors/k", json={"filters": {}, "run_now": True})
            assert r.status_code == 202, r.text
        wait_state(server, channel, "k", ("running",),
                   pred=lambda m: m["sync_state"]["current_step_number"] == 4
                   and m["sync_state"]["current_step_percentage"] >= 20)
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait()
        stored = {p.name for p in (server.home / "blobs").glob("??/*")}
        by_sha = {r["sha256"]: f"/{sd}/{fn}" for sd, recs in upstream_records(upstream.root).items()
                  for fn, r in recs.items()}
        complete_before_kill = {by_sha[s] for s in stored if s in by_sha} - {
            f"/linux-64/{fn}" for fn in before["linux-64"]}
        assert complete_before_kill  # the kill came after some downloads finished
        upstream.delay = 3.0  # keep the resumed run busy while we look at the index
        server = restart_server(server)
        assert served_all(server, channel) == before  # the last good index, not a half-built one
        upstream.delay = 0
        m = wait_state(server, channel, "k", timeout=60, pred=lambda m: m["sync_state"].get("finished_at"))
        want = {sd: set(recs) for sd, recs in upstream_records(upstream.root).items()}
        want["linux-64"] -= {"torch-2.0-h0_0.tar.bz2", "torch-2.1-h0_0.tar.bz2"}
        assert served_all(server, channel) == want
        # files that were complete before the kill were not downloaded again
        hits = package_hits(upstream)
        assert {p: hits[p] for p in complete_before_kill} == dict.fromkeys(complete_before_kill, 1)
        assert m["sync_state"]["count"]["failed"] == 0
    finally:
        upstream.delay = 0
        server.stop()
        time.sleep(0)


def test_mirror_a_private_taipan_channel_into_a_subchannel(cli, mirror_server, upstream) -> None:
    """A Taipan channel is an upstream too: token in the URL, subdirs from its channeldata.json."""
    source = unique("src")
    cli.run("channel", "--create", source)
    with api(mirror_server) as c:
        assert c.put(f"/channels/{source}", json={"privacy": "private"}).status_code == 200
    cli.run("mirror", "--create", "up", "--channel", source, "--source", upstream.url, "--mode", "active",
            "--run_now", "--only_spec", "zlib", "--only_spec", "pydata")
    wait_state(mirror_server, source, "up")
    target = unique("dst")
    cli.run("channel", "--create", target)
    cli.run("channel", "--create", f"{target}/sub")
    token = mirror_server.admin_token()
    cli.run("mirror", "--create", "down", "--channel", f"{target}/sub", "--source",
            f"{mirror_server.api}/repo/t/{token}/{source}", "--run_now", "--exclude_spec", "zlib <1.3")
    m = wait_state(mirror_server, f"{target}/subchannels/sub", "down")
    assert m["sync_state"]["count"]["passive"] == 2
    assert served_all(mirror_server, f"{target}/sub", ("linux-64", "noarch")) == {
        "linux-64": {"zlib-1.3.1-h0_0.conda"}, "noarch": {"pydata-0.5-pyh0_0.conda"}}
    listed = cli.run("mirror", "--list-all", "--json").stdout
    assert f'"channel": "{target}/sub"' in listed


def test_passive_file_with_upstream_down_is_a_clean_502(cli, mirror_server, upstream) -> None:
    build_channel(upstream.root, salt=unique("salt"))
    channel = unique("down")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "pd", "--channel", channel, "--source", upstream.url, "--run_now",
            "--only_spec", "zlib")
    wait_state(mirror_server, channel, "pd")
    upstream.fail["/linux-64/zlib-1.3.1-h0_0.conda"] = 99
    with httpx.Client() as c:
        r = c.get(f"{mirror_server.api}/repo/{channel}/linux-64/zlib-1.3.1-h0_0.conda")
        assert r.status_code == 502 and r.json()["code"] == "upstream_unreachable" and r.json()["hint"]
        upstream.fail.clear()
        r = c.get(f"{mirror_server.api}/repo/{channel}/linux-64/zlib-1.3.1-h0_0.conda")
        rec = upstream_records(upstream.root)["linux-64"]["zlib-1.3.1-h0_0.conda"]
        assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == rec["sha256"]
