"""Mirror run state in a real database: claims, stale runs, schedules that fire once, re-runs."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from taipan.db.migrate import upgrade
from taipan.db.mirrors import Mirror
from taipan.db.models import Channel
from taipan.jobs import CronScheduler
from taipan.jobs.inprocess import InProcessQueue
from taipan.runtime import build_runtime
from taipan.services import mirroring
from taipan.services.mirror_runs import claim, initial_sync_state, is_stale
from taipan.settings import Settings


@pytest.fixture
def rt(db_url: str, tmp_path: Path):
    upgrade(db_url)
    runtime = build_runtime(Settings(home=tmp_path / "home", database={"url": db_url},
                                     mirrors={"allowed_networks": ["127.0.0.0/8", "::1/128"]}))
    yield runtime
    runtime.close()


@pytest.fixture
def mirror_id(rt) -> str:
    with rt.sessions() as db:
        ch = Channel(name="c", path="c")
        db.add(ch)
        db.flush()
        m = Mirror(channel_id=ch.id, name="m", source_root="http://127.0.0.1:9/x", state="pending",
                   sync_state=initial_sync_state(), filters={}, cache={}, cron="0 0 * * *",
                   next_run_at=datetime(2020, 1, 1, tzinfo=UTC))
        db.add(m)
        db.commit()
        return m.id


def test_claim_is_exclusive_and_stale_runs_are_taken_over(rt, mirror_id) -> None:
    with rt.sessions() as db:
        first = claim(db, mirror_id, f"{socket.gethostname()}:{os.getpid()}")
    with rt.sessions() as db:
        assert first and claim(db, mirror_id, "other-host:1") is None  # running, heartbeat fresh
        db.execute(update(Mirror).where(Mirror.id == mirror_id)
                   .values(heartbeat_at=datetime.now(UTC) - timedelta(minutes=5)))
        db.commit()
        m = db.get(Mirror, mirror_id)
        assert is_stale(m)
    with rt.sessions() as db:
        second = claim(db, mirror_id, "other-host:1")
    assert second and second != first


def test_dead_local_owner_is_stale_at_once(rt, mirror_id) -> None:
    with rt.sessions() as db:
        db.execute(update(Mirror).where(Mirror.id == mirror_id).values(
            state="running", heartbeat_at=datetime.now(UTC), run_owner=f"{socket.gethostname()}:999999999"))
        db.commit()
        assert is_stale(db.get(Mirror, mirror_id))


def test_a_due_schedule_fires_once_across_schedulers(rt, mirror_id) -> None:
    env = rt.extras["mirror_env"]
    fired: list[dict] = []
    queues = [InProcessQueue(rt.jobs.registry) for _ in range(2)]  # two processes' worth of locks
    for q in queues:
        q.enqueue = lambda name, payload: fired.append(payload)  # type: ignore[method-assign]
    schedulers = [CronScheduler(q, [lambda now: mirroring.due_runs(env, now)]) for q in queues]
    assert sum(s.tick() for s in schedulers) == 1  # the database compare-and-set let only one through
    assert sum(s.tick() for s in schedulers) == 0
    assert fired == [{"mirror_id": mirror_id}]
    with rt.sessions() as db:
        m = db.get(Mirror, mirror_id)
        assert m.state == "pending" and m.next_run_at > datetime.now(UTC)


def test_run_now_while_running_runs_again_after(rt, mirror_id) -> None:
    with rt.sessions() as db:
        run_id = claim(db, mirror_id, f"{socket.gethostname()}:{os.getpid()}")
        m = db.get(Mirror, mirror_id)
        db.refresh(m)
        assert run_id and not mirroring.request_run(db, m)
        db.commit()
        assert m.cache.get("rerun") is True


def test_sync_publishes_on_this_database(rt, mirror_id, tmp_path: Path) -> None:
    """A passive run, then an active one, through run_mirror: rows, index log, published index."""
    from mirror_upstream import UpstreamServer, build_channel
    from sqlalchemy import func, select

    from taipan.db.models import File, IndexChange
    from taipan.services.mirror_sync import run_mirror

    up = UpstreamServer(build_channel(tmp_path / "up")).start()
    env = rt.extras["mirror_env"]
    try:
        with rt.sessions() as db:
            db.execute(update(Mirror).where(Mirror.id == mirror_id).values(
                source_root=up.url, filters={"subdirs": ["linux-64", "noarch"], "exclude_specs": ["torch"]}))
            db.commit()
        assert run_mirror(env, mirror_id) == "completed"
        with rt.sessions() as db:
            m = db.get(Mirror, mirror_id)
            states = dict(db.execute(select(File.state, func.count()).group_by(File.state)).all())
            logged = db.scalar(select(func.count()).select_from(IndexChange))
        assert m.state == "completed" and states == {"passive": 12} and logged == 12
        pub = rt.indexer.publication(m.channel_id, "linux-64")
        assert b"libfoo-2.0-h0_0.conda" in pub.file("repodata.json") and b"torch" not in pub.file("repodata.json")
        with rt.sessions() as db:
            db.execute(update(Mirror).where(Mirror.id == mirror_id).values(mode="active", state="pending"))
            db.commit()
        assert run_mirror(env, mirror_id) == "completed"
        with rt.sessions() as db:
            states = dict(db.execute(select(File.state, func.count()).group_by(File.state)).all())
            shas = db.scalars(select(File.sha256)).all()
        assert states == {"active": 12} and all(rt.blobs.exists(s) for s in shas)
    finally:
        up.stop()
