"""/healthz, /readyz, /metrics and request ids, on a real server; JSON logs with the request id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx
import pytest


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + ("{" if labels else " ")) and all(f'{k}="{v}"' in line
                                                                     for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_health_readiness_and_metrics(taipan_server, conda_packages):
    assert httpx.get(f"{taipan_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{taipan_server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "blobs": "ok"}
    assert httpx.get(f"{taipan_server.url}/metrics").status_code == 401
    token = taipan_server.admin_token()
    with taipan_server.client(token) as c:
        c.post("/channels", json={"name": "observed"})
        p = conda_packages["hello"]
        c.post("/channels/observed/artifacts", files={"content": (p.name, p.read_bytes())})
    assert httpx.get(f"{taipan_server.api}/repo/observed/noarch/repodata.json").status_code == 200
    assert httpx.get(f"{taipan_server.api}/repo/observed/noarch/{p.name}").status_code == 200
    time.sleep(0.2)
    r = httpx.get(f"{taipan_server.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _metric(text, "taipan_http_requests_total", route="repo", method="GET", status="2xx") >= 2
    assert _metric(text, "taipan_downloads_total", family="conda") >= 1
    assert _metric(text, "taipan_index_publish_seconds_count", family="conda") >= 1
    assert "taipan_job_queue_depth" in text and "observed" not in text and "hello" not in text
    # The serving process left its start's objects (modules, the app) out of the garbage
    # collector's full passes.
    assert _metric(text, "taipan_gc_frozen_objects") > 10_000
    assert "taipan_gc_full_collections_total" in text


def test_request_ids_are_echoed(taipan_server):
    assert httpx.get(f"{taipan_server.url}/healthz", headers={"X-Request-ID": "abc-123"}).headers[
        "x-request-id"] == "abc-123"
    odd = httpx.get(f"{taipan_server.url}/healthz", headers={"X-Request-ID": "a b\tc" * 30})
    assert odd.headers["x-request-id"] != "a b\tc" * 30 and len(odd.headers["x-request-id"]) == 16


def test_metrics_refused_to_a_non_admin(server_factory):
    server = server_factory()
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", "alice", "--password",
                    "alice-password-1"], env={**os.environ, "TAIPAN_HOME": str(server.home)},
                   check=True, capture_output=True)
    session = server.login("alice", "alice-password-1")
    r = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {session}"})
    assert r.status_code == 403 and r.json()["code"] == "admin_required"
    public = server_factory({"TAIPAN_OBSERVABILITY__METRICS_PUBLIC": "true"})
    assert httpx.get(f"{public.url}/metrics").status_code == 200


@pytest.mark.parametrize("kind", ["granian", "uvicorn"])
def test_json_logs_carry_the_request_id(server_factory, kind):
    server = server_factory({"TAIPAN_OBSERVABILITY__JSON_LOGS": "true"}, args=("--log-level", "info",
                                                                             "--access-log", "--server", kind))
    httpx.get(f"{server.url}/healthz", headers={"X-Request-ID": "trace-42"})
    deadline = time.monotonic() + 15  # the line is written as the answer ends
    while True:
        lines = [json.loads(line) for line in server.log.read_text().splitlines() if line.startswith("{")]
        access = [e for e in lines if e["logger"] == f"{kind}.access" and "/healthz" in e["message"]]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert lines, server.log.read_text()[-2000:]
    assert access and access[-1]["request_id"] == "trace-42" and access[-1]["level"] == "info"
