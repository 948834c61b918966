"""A mirror run into a frozen channel that replaces a file (same name, new bytes and record): the
frozen channel goes on listing and serving the file it had (the index's record and the downloaded
bytes agree), and on unfreeze the index shows the new record and the URL serves its bytes."""

from __future__ import annotations

import hashlib

import httpx
from mirror_upstream import build_channel, upstream_records

from conftest import api, unique, wait_state


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
