"""Passive files: fetched from upstream only for someone allowed to read the channel, and never
served complete or stored when the upstream bytes do not match the recorded checksum."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import httpx
from mirror_upstream import upstream_records

from conftest import api, unique, wait_state

TAIPAN = str(Path(sys.executable).parent / "taipan")


def _package_gets(upstream) -> int:
    return sum(n for k, n in upstream.hits.items() if k.startswith("GET") and k.endswith((".conda", ".tar.bz2")))


def test_private_passive_file_is_not_fetched_for_outsiders(cli, mirror_server, upstream) -> None:
    channel = unique("privpass")
    cli.run("channel", "--create", channel)
    cli.run("channel", "--lock", channel)
    cli.run("mirror", "--create", "pp", "--channel", channel, "--source", upstream.url, "--subdirs", "linux-64",
            "--only_spec", "torch", "--run_now")
    wait_state(mirror_server, channel, "pp")
    user = unique("outsider")
    subprocess.run([TAIPAN, "user", "create", user, "--password", "outsider-password-1"], check=True,
                   env={**os.environ, "TAIPAN_HOME": str(mirror_server.home)}, capture_output=True)
    token = mirror_server.login(user, "outsider-password-1")
    url = f"{mirror_server.api}/repo/{channel}/linux-64/torch-2.1-h0_0.conda"
    upstream.hits.clear()
    with httpx.Client() as c:
        assert c.get(url).status_code == 401
        # a private channel is hidden from outsiders: 404, as if it did not exist
        assert c.get(url, headers={"X-Auth": token}).status_code == 404
        assert c.get(url.replace("/repo/", f"/repo/t/{token}/")).status_code == 404
        assert c.head(url).status_code == 401
    assert _package_gets(upstream) == 0
    with api(mirror_server) as c:  # the owner gets it, fetched once
        assert c.get(url).status_code == 200
    assert _package_gets(upstream) == 1


def test_tampered_passive_file_is_neither_served_complete_nor_stored(cli, mirror_server, upstream) -> None:
    channel = unique("tamper")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "tp", "--channel", channel, "--source", upstream.url, "--subdirs", "linux-64",
            "--only_spec", "apachething", "--run_now")  # ~300 kB: several chunks
    wait_state(mirror_server, channel, "tp")
    fn = "apachething-1.0-h0_0.conda"
    rec = upstream_records(upstream.root)["linux-64"][fn]
    path = upstream.root / "linux-64" / fn
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF
    path.write_bytes(bytes(bad))
    url = f"{mirror_server.api}/repo/{channel}/linux-64/{fn}"
    with httpx.Client(timeout=30) as c:
        for _ in range(2):  # the bad bytes were not stored: the second try goes upstream again
            try:
                r = c.get(url)
                got_complete = r.status_code == 200 and len(r.content) == rec["size"]
            except httpx.HTTPError:
                got_complete = False
            assert not got_complete
        path.write_bytes(good)
        r = c.get(url)
    assert r.status_code == 200 and hashlib.sha256(r.content).hexdigest() == rec["sha256"]
