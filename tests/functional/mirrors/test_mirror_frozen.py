"""A mirror run into a frozen channel that replaces a file (same name, new bytes and record): the
frozen channel goes on listing and serving the file it had (the index's record and the downloaded
bytes agree), and on unfreeze the index shows the new record and the URL serves its bytes. A blob
cleanup meanwhile keeps both files' bytes, and a restart meanwhile changes nothing of it."""

from __future__ import annotations

import hashlib
import os
import time

import httpx
from mirror_upstream import build_channel, upstream_records

from conftest import api, restart_server, start_server, unique, wait_state


def test_a_file_replaced_while_frozen_is_published_on_unfreeze(cli, mirror_server, upstream) -> None:
    channel = unique("icy")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "m", "--channel", channel, "--source", upstream.url, "--mode", "active",
            "--run_now", "--only_spec", "zlib")
    first = wait_state(mirror_server, channel, "m")["sync_state"]["run_id"]
    fn, base = "zlib-1.3.1-h0_0.conda", f"{mirror_server.api}/repo/{channel}/linux-64"

    def served() -> tuple[str, str]:
        """The sha256 the index gives the file, and that of the bytes its URL serves."""
        record = httpx.get(f"{base}/repodata.json").json()["packages.conda"][fn]
        r = httpx.get(f"{base}/{fn}")
        assert r.status_code == 200
        return record["sha256"], hashlib.sha256(r.content).hexdigest()

    old = upstream_records(upstream.root)["linux-64"][fn]
    assert served() == (old["sha256"], old["sha256"])
    with api(mirror_server) as c:
        assert c.put(f"/channels/{channel}", json={"frozen": True}).status_code == 200
        build_channel(upstream.root, salt=unique("salt"))  # every file gets new bytes
        new = upstream_records(upstream.root)["linux-64"][fn]
        assert new["sha256"] != old["sha256"]
        cli.run("mirror", "--restart", "m", "--channel", channel)
        wait_state(mirror_server, channel, "m",
                   pred=lambda m: m["sync_state"].get("finished_at") and m["sync_state"]["run_id"] != first)
        for _ in range(3):  # the frozen channel is what it was, in its index and its downloads
            assert served() == (old["sha256"], old["sha256"])
        files = c.get(f"/channels/{channel}/artifacts/conda/zlib/files").json()["items"]
        assert {f["name"]: f["sha256"] for f in files}[fn] == old["sha256"]

        assert c.put(f"/channels/{channel}", json={"frozen": False}).status_code == 200
        for _ in range(3):
            assert served() == (new["sha256"], new["sha256"])
        files = c.get(f"/channels/{channel}/artifacts/conda/zlib/files").json()["items"]
        assert {f["name"]: f["sha256"] for f in files}[fn] == new["sha256"]


FN = "zlib-1.3.1-h0_0.conda"


def _mirror_then_replace_while_frozen(server, upstream) -> tuple[str, dict, dict]:
    """A channel mirroring zlib (active), frozen, then a run whose every file has new bytes: the
    replacements wait. Returns the channel and zlib 1.3.1's upstream record before and after."""
    channel = unique("icy")
    with api(server) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        r = c.post(f"/channels/{channel}/mirrors", json={
            "mirror_name": "m", "source_root": upstream.url, "mirror_mode": "active", "run_now": True,
            "filters": {"only_specs": ["zlib"]}})
        assert r.status_code == 201, r.text
        first = wait_state(server, channel, "m")["sync_state"]["run_id"]
        old = upstream_records(upstream.root)["linux-64"][FN]
        assert c.put(f"/channels/{channel}", json={"frozen": True}).status_code == 200
        build_channel(upstream.root, salt=unique("salt"))
        new = upstream_records(upstream.root)["linux-64"][FN]
        assert new["sha256"] != old["sha256"]
        assert c.put(f"/channels/{channel}/mirrors/m", json={"run_now": True}).status_code == 202
        wait_state(server, channel, "m",
                   pred=lambda m: m["sync_state"].get("finished_at") and m["sync_state"]["run_id"] != first)
    return channel, old, new


def _served(server, channel: str) -> tuple[str, str]:
    """The sha256 the index gives zlib 1.3.1, and that of the bytes its URL serves."""
    base = f"{server.api}/repo/{channel}/linux-64"
    record = httpx.get(f"{base}/repodata.json").json()["packages.conda"][FN]
    r = httpx.get(f"{base}/{FN}")
    assert r.status_code == 200
    return record["sha256"], hashlib.sha256(r.content).hexdigest()


def _age_blobs(server, seconds: float) -> None:
    t = time.time() - seconds
    for p in (server.home / "blobs").glob("??/*"):
        os.utime(p, (t, t))


def _cleanup(server) -> dict:
    """A whole blob cleanup as an admin runs it: scan, look at what it found, delete it."""
    def wait(c: httpx.Client, state: str) -> dict:
        deadline = time.monotonic() + 60
        while (body := c.get("/system/blob_cleanup").json())["state"] != state:
            assert body["state"] not in ("failed", "cancelled") and time.monotonic() < deadline, body
            time.sleep(0.1)
        return body

    with api(server) as c:
        assert c.post("/system/blob_cleanup").status_code == 200
        found = wait(c, "found")
        r = c.delete("/system/blob_cleanup")
        assert r.status_code == 200 and r.json()["state"] == "deleting", r.text
        done = wait(c, "done")
    return {**done, "orphans": found["orphans"]}


def test_blob_cleanup_keeps_both_blobs_of_a_waiting_replacement(upstream, tmp_path) -> None:
    """A blob cleanup (every blob past its grace period) while a mirror's replacement waits in a frozen
    channel keeps the blob the frozen index serves and the one waiting; after the unfreeze the
    replaced blob is reclaimed and the new one kept; downloads match the index throughout."""
    server = start_server(tmp_path / "home")
    try:
        channel, old, new = _mirror_then_replace_while_frozen(server, upstream)
        blob = lambda sha: server.home / "blobs" / sha[:2] / sha  # noqa: E731
        assert blob(old["sha256"]).exists() and blob(new["sha256"]).exists()
        _age_blobs(server, 2 * 3600)
        done = _cleanup(server)
        assert not {old["sha256"], new["sha256"]} & set(done["orphans"]), done
        assert blob(old["sha256"]).exists() and blob(new["sha256"]).exists()
        for _ in range(2):
            assert _served(server, channel) == (old["sha256"], old["sha256"])

        with api(server) as c:
            assert c.put(f"/channels/{channel}", json={"frozen": False}).status_code == 200
        for _ in range(2):
            assert _served(server, channel) == (new["sha256"], new["sha256"])
        _age_blobs(server, 2 * 3600)
        done = _cleanup(server)
        assert old["sha256"] in done["orphans"] and new["sha256"] not in done["orphans"], done
        assert not blob(old["sha256"]).exists() and blob(new["sha256"]).exists()
        assert _served(server, channel) == (new["sha256"], new["sha256"])
    finally:
        server.stop()


def test_a_restart_while_frozen_serves_the_frozen_index_and_the_unfreeze_publishes_what_waited(
        upstream, package_builder, tmp_path) -> None:
    """`taipan serve` restarted while a channel is frozen: the same index (ETag and bytes) as before,
    a file uploaded meanwhile still 404, a replacement still waiting; the unfreeze after the restart
    publishes both."""
    server = start_server(tmp_path / "home")
    try:
        channel, old, new = _mirror_then_replace_while_frozen(server, upstream)
        icy = package_builder("icy", "1.0", "linux-64")
        base = f"{server.api}/repo/{channel}/linux-64"
        with api(server) as c:
            r = c.post(f"/channels/{channel}/artifacts", files={"content": (icy.name, icy.read_bytes())})
            assert r.status_code == 201, r.text

        def frozen_state() -> tuple[str | None, bytes]:
            assert httpx.get(f"{base}/{icy.name}").status_code == 404
            assert _served(server, channel) == (old["sha256"], old["sha256"])
            with api(server) as c:
                files = c.get(f"/channels/{channel}/artifacts/conda/zlib/files").json()["items"]
                assert {f["name"]: f["sha256"] for f in files}[FN] == old["sha256"]
            r = httpx.get(f"{base}/repodata.json")
            assert icy.name not in r.json()["packages.conda"]
            return r.headers.get("etag"), r.content

        before = frozen_state()
        server.stop()
        server = restart_server(server)
        base = f"{server.api}/repo/{channel}/linux-64"  # a new port
        for _ in range(2):  # looked up, then from memory
            assert frozen_state() == before
        assert httpx.get(f"{base}/repodata.json", headers={"If-None-Match": before[0]}).status_code == 304

        with api(server) as c:
            assert c.put(f"/channels/{channel}", json={"frozen": False}).status_code == 200
        for _ in range(2):
            assert _served(server, channel) == (new["sha256"], new["sha256"])
            r = httpx.get(f"{base}/{icy.name}")
            assert r.status_code == 200 and r.content == icy.read_bytes()
            assert icy.name in httpx.get(f"{base}/repodata.json").json()["packages.conda"]
    finally:
        server.stop()
