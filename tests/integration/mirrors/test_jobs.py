"""The job system: registry, in-process queue, scheduler, and Huey on the local Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taipan.jobs import CronScheduler, DueRun, JobRegistry
from taipan.jobs.inprocess import InProcessQueue

REDIS_URL = os.environ.get("TAIPAN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
HERE = Path(__file__).parent


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5).ping())
    except Exception:
        return False


needs_redis = pytest.mark.skipif(not redis_available(), reason="no Redis at " + REDIS_URL)


def test_inprocess_runs_jobs_and_survives_failures() -> None:
    reg = JobRegistry()
    done = threading.Event()
    seen: list[dict] = []
    reg.register("boom", lambda p: 1 / 0)
    reg.register("ok", lambda p: (seen.append(p), done.set()))
    q = InProcessQueue(reg, workers=1)
    q.enqueue("ok", {"n": 1})  # before start: kept, then run
    q.start()
    q.enqueue("boom", {})
    assert done.wait(5)
    assert seen == [{"n": 1}]
    with pytest.raises(LookupError):
        q.enqueue("nope", {})
    with pytest.raises(TypeError):
        q.enqueue("ok", {"x": object()})  # payloads must be JSON
    q.stop()


def test_scheduler_fires_once_per_due_time_and_respects_claim() -> None:
    reg = JobRegistry()
    reg.register("j", lambda p: None)
    q = InProcessQueue(reg)
    fired: list[dict] = []
    q.enqueue = lambda name, payload: fired.append(payload)  # type: ignore[method-assign]
    due = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    claims = iter([False, True])
    sched = CronScheduler(q, [lambda now: [DueRun("m1", due, "j", {"m": 1}),
                                           DueRun("m2", due, "j", {"m": 2}, claim=lambda: next(claims))]])
    assert sched.tick() == 1  # m2 lost its claim (another process advanced it)
    assert sched.tick() == 0  # same minute: locked
    assert fired == [{"m": 1}]


@needs_redis
def test_huey_queue_roundtrip() -> None:
    from taipan.jobs.redis import HueyQueue

    reg = JobRegistry()
    reg.register("j", lambda p: None)
    q = HueyQueue(reg, redis_url=REDIS_URL, name=f"taipan-test-{uuid.uuid4().hex[:8]}")
    try:
        q.enqueue("j", {"a": 1})
        assert q.pending_count() == 1
        key = uuid.uuid4().hex
        assert q.once(key, 5) and not q.once(key, 5)
    finally:
        q.huey.flush()


@needs_redis
def test_two_workers_run_a_scheduled_job_exactly_once(tmp_path: Path) -> None:
    name = f"taipan-test-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "runs.txt"
    fire_at = datetime.now(UTC).replace(second=0, microsecond=0).isoformat()
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    procs = [subprocess.Popen([sys.executable, str(HERE / "jobs_worker_proc.py"), REDIS_URL, name, str(out),
                               fire_at], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(2)]
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(list(tmp_path.glob("runs.txt.ready.*"))) < 2:
            time.sleep(0.05)
        assert len(list(tmp_path.glob("runs.txt.ready.*"))) == 2
        while time.monotonic() < deadline and not out.exists():
            time.sleep(0.05)
        time.sleep(1.0)  # many more ticks of both schedulers: still one run
        lines = out.read_text().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].endswith("mirror-1")
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        import redis

        conn = redis.Redis.from_url(REDIS_URL)
        for key in conn.scan_iter(f"*{name}*"):
            conn.delete(key)
