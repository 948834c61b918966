"""Secrets never reach the server's log: token URLs in the access log (`--access-log`) are redacted."""

from __future__ import annotations

import uuid

import httpx
import pytest


@pytest.mark.parametrize("kind", ["granian", "uvicorn"])
def test_token_urls_never_reach_the_log(server_factory, conda_packages, kind) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"PYTHONUNBUFFERED": "1"}, args=("--access-log", "--log-level", "debug", "--server", kind))
    channel = f"logs-{uuid.uuid4().hex[:8]}"
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": channel}).raise_for_status()
        c.put(f"/channels/{channel}", json={"privacy": "private"}).raise_for_status()
        p = conda_packages["hello"]
        c.post(f"/channels/{channel}/artifacts", files={"content": (p.name, p.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
        token = c.post("/account/tokens", json={"name": "logs", "scopes": ["artifact:download"]}).json()["token"]
    index = f"{channel}/noarch/repodata.json"
    assert httpx.get(f"{server.api}/repo/t/{token}/{index}").status_code == 200
    assert httpx.get(f"{server.url}/t/{token}/api/repo/{index}").status_code == 200
    assert httpx.get(f"{server.api}/repo/t/{token}x/{index}").status_code == 401
    server.stop()
    log = server.log.read_text()
    assert token not in log
    # The requests are logged, with the token replaced.
    assert f"/api/repo/t/***/{index}" in log and f"/t/***/api/repo/{index}" in log
