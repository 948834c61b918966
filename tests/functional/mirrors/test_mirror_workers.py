"""The distributed job backend: `taipan serve` enqueues on Redis, two `taipan worker` processes
consume, and a scheduled sync runs exactly once."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import api, served_all, start_server, unique, wait_state

REDIS_URL = os.environ.get("TAIPAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TAIPAN = str(Path(sys.executable).parent / "taipan")


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not redis_available(), reason="no Redis at " + REDIS_URL)


def test_two_workers_run_a_scheduled_sync_exactly_once(upstream, tmp_path: Path) -> None:
    queue = f"taipan-test-{uuid.uuid4().hex[:8]}"
    env = {"TAIPAN_JOBS__BACKEND": "redis", "TAIPAN_JOBS__REDIS_URL": REDIS_URL, "TAIPAN_JOBS__QUEUE_NAME": queue}
    home = tmp_path / "home"
    server = start_server(home, env)
    worker_env = {**os.environ, **env, "TAIPAN_HOME": str(home),
                  "TAIPAN_MIRRORS__ALLOWED_NETWORKS": '["127.0.0.0/8"]'}  # the upstream is on loopback
    workers = [subprocess.Popen([TAIPAN, "worker", "--tick", "0.2", "--threads", "2"], env=worker_env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"worker{i}.log", "wb"))
               for i in range(2)]
    channel = unique("sched")
    try:
        with api(server) as c:
            assert c.post("/channels", json={"name": channel}).status_code == 201
            r = c.post(f"/channels/{channel}/mirrors", json={
                "mirror_name": "nightly", "source_root": upstream.url, "cron": "0 3 * * *",
                "filters": {"subdirs": ["linux-64", "noarch"]}})
            assert r.status_code == 201, r.text
            assert r.json()["state"] == "pending" and r.json()["next_run_at"]
        time.sleep(1.0)  # both workers are ticking; nothing is due yet
        assert upstream.hits["GET /linux-64/repodata.json.zst"] == 0
        # The schedule comes due (as at 03:00): both workers see it on their next tick.
        with sqlite3.connect(home / "taipan.db") as db:
            db.execute("UPDATE mirrors SET next_run_at = '2020-01-01 03:00:00.000000'")
        m = wait_state(server, channel, "nightly", timeout=30)
        time.sleep(1.5)  # many more ticks of both schedulers
        with api(server) as c:
            m = c.get(f"/channels/{channel}/mirrors/nightly").json()
        assert upstream.hits["GET /linux-64/repodata.json.zst"] == 1  # ran exactly once
        assert upstream.hits["GET /noarch/repodata.json.zst"] == 1
        assert m["state"] == "completed" and m["next_run_at"] > "2026"
        assert m["sync_state"]["worker"].endswith(tuple(f":{w.pid}" for w in workers))
        assert "zlib-1.3.1-h0_0.conda" in served_all(server, channel, ("linux-64",))["linux-64"]
        # run_now through the API is consumed by a worker too
        upstream.hits.clear()
        with api(server) as c:
            assert c.put(f"/channels/{channel}/mirrors/nightly", json={"run_now": True}).status_code == 202
        wait_state(server, channel, "nightly", timeout=30, pred=lambda m: m["sync_state"].get("finished_at"))
        assert upstream.hits["GET /linux-64/repodata.json.zst"] == 1
        assert all(w.poll() is None for w in workers)  # workers survive jobs
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait()
        server.stop()
        import redis

        conn = redis.Redis.from_url(REDIS_URL)
        for key in conn.scan_iter(f"*{queue}*"):
            conn.delete(key)
