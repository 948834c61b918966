"""Concurrent identical uploads: one wins (201), every other gets 409 file_exists, never a 500."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

RACERS = 50


def test_same_key_upload_race(any_db_server, conda_packages):
    server = any_db_server
    token = server.admin_token()
    pkg = conda_packages["hello"]
    data = pkg.read_bytes()
    with server.client(token) as c:
        c.post("/channels", json={"name": "race"}).raise_for_status()
    start = threading.Barrier(RACERS)

    def one(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=server.api, headers={"X-Auth": token}, timeout=120) as client:
            start.wait()
            r = client.post("/channels/race/artifacts", files={"content": (pkg.name, data)},
                            data={"filetype": "conda1"})
            json_body = r.headers.get("content-type", "").startswith("application/json")
            return r.status_code, r.json().get("code", "") if json_body else r.text[:200]

    with ThreadPoolExecutor(RACERS) as pool:
        results = list(pool.map(one, range(RACERS)))
    statuses = sorted(s for s, _ in results)
    assert statuses.count(201) == 1, results
    assert statuses.count(409) == RACERS - 1, results
    assert {code for s, code in results if s == 409} == {"file_exists"}
    with server.client(token) as c:
        assert c.get("/channels/race/artifacts").json()["total_count"] == 1
    assert httpx.get(f"{server.api}/repo/race/noarch/repodata.json").json()["packages.conda"].keys() == {pkg.name}
