"""`taipan serve --server granian`: the same server on granian, which sends artifact files with the
ASGI pathsend extension. Packages, Range, index files, 304s and a prompt stop on SIGTERM."""

from __future__ import annotations

import signal
import time

import httpx


def test_granian_serves_the_same_channel(server_factory, conda_packages):
    server = server_factory(args=("--server", "granian"))
    token = server.admin_token()
    p = conda_packages["hello"]
    with server.client(token) as c:
        assert c.post("/channels", json={"name": "fast"}).status_code == 201
        assert c.post("/channels/fast/artifacts", files={"content": (p.name, p.read_bytes())}).status_code == 201
    url = f"{server.api}/repo/fast/noarch/{p.name}"
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == p.read_bytes()
    part = httpx.get(url, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == p.read_bytes()[5:15]
    index = httpx.get(f"{server.api}/repo/fast/noarch/repodata.json")
    assert p.name in index.text
    again = httpx.get(f"{server.api}/repo/fast/noarch/repodata.json", headers={"If-None-Match": index.headers["etag"]})
    assert again.status_code == 304
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=10)
    assert time.monotonic() - started < 10
