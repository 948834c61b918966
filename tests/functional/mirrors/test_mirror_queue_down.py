"""With the Redis job queue down, --run_now answers normally and the mirror says why it did not run."""

from __future__ import annotations

from pathlib import Path

from conftest import api, start_server, unique


def test_run_now_with_the_queue_down_reports_on_the_mirror(upstream, tmp_path: Path) -> None:
    server = start_server(tmp_path / "home", {"TAIPAN_JOBS__BACKEND": "redis",
                                              "TAIPAN_JOBS__REDIS_URL": "redis://127.0.0.1:1/0"})
    channel = unique("noqueue")
    try:
        with api(server) as c:
            assert c.post("/channels", json={"name": channel}).status_code == 201
            r = c.post(f"/channels/{channel}/mirrors", json={
                "mirror_name": "q", "source_root": upstream.url, "run_now": True})
            assert r.status_code == 201, r.text
            m = r.json()
            assert m["state"] == "failed" and "could not be queued" in m["sync_state"]["last_exception"]
            r = c.put(f"/channels/{channel}/mirrors/q", json={"run_now": True})
            assert r.status_code == 202 and r.json()["state"] == "failed"
            assert c.get(f"/channels/{channel}/mirrors/q").json()["state"] == "failed"
    finally:
        server.stop()
