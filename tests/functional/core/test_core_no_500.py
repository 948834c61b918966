"""Inputs that used to crash the server (500) get a clear 4xx, and a failed request stores nothing."""

from __future__ import annotations

import uuid

import httpx
import pytest

HUGE = [str(2**63), str(2**64), "9" * 30, "-1"]


@pytest.fixture(scope="module")
def listed(taipan_server, conda_packages):
    name = f"pages-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        c.post(f"/channels/{name}/subchannels", json={"name": "sub"}).raise_for_status()
        for ch in (name, f"{name}/sub"):
            p = conda_packages["hello"]
            c.post(f"/channels/{ch}/artifacts", files={"content": (p.name, p.read_bytes())}).raise_for_status()
    return name


def paginated(name: str) -> list[str]:
    sub = f"{name}/subchannels/sub"
    return [f"/channels/{name}/history", f"/channels/{name}/artifacts", f"/channels/{sub}/history",
            f"/channels/{sub}/artifacts", f"/channels/{name}/artifacts/conda/hello/files",
            f"/channels/{sub}/artifacts/conda/hello/files", "/artifacts"]


@pytest.mark.parametrize("param", ["offset", "limit"])
def test_huge_paging_values_are_4xx_on_every_paginated_endpoint(taipan_server, listed, param):
    for path in paginated(listed):
        for value in HUGE:
            r = httpx.get(f"{taipan_server.api}{path}", params={param: value})  # anonymous, public channel
            assert 400 <= r.status_code < 500, (path, value, r.status_code, r.text[:200])
            body = r.json()
            assert body["code"] and body["message"] and body["hint"], body
        assert httpx.get(f"{taipan_server.api}{path}", params={param: "10"}).status_code == 200, path
