"""Pruning the index log keeps sequence numbers increasing and readers current."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from test_core_services import admin_principal, put

from taipan.db.models import IndexChange
from taipan.services import channels, maintenance
from taipan.services.indexing import Indexer


def test_prune_keeps_the_newest_row_and_readers_follow(runtime, conda_packages, package_builder):
    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "pruned")
        db.commit()
    reader = Indexer(runtime.sessions, blobs=runtime.blobs, poll_interval=0.0)
    cid, _ = put(runtime, p, "pruned", conda_packages["hello"])
    put(runtime, p, "pruned", conda_packages["hello-1.1"])
    assert len(json.loads(reader.publication(cid, "noarch").file("repodata.json"))["packages.conda"]) == 2
    with runtime.sessions() as db, db.begin():
        newest = db.scalar(select(func.max(IndexChange.seq)))
        db.execute(update(IndexChange).values(created=datetime(2020, 1, 1, tzinfo=UTC)))
    assert maintenance.prune_index_log(runtime.sessions) >= 1
    with runtime.sessions() as db:
        assert db.scalars(select(IndexChange.seq)).all() == [newest]
    assert maintenance.prune_index_log(runtime.sessions) == 0
    put(runtime, p, "pruned", package_builder("later", "1.0", "noarch"))
    with runtime.sessions() as db:
        assert db.scalar(select(func.max(IndexChange.seq))) > newest
    names = set(json.loads(reader.publication(cid, "noarch").file("repodata.json"))["packages.conda"])
    assert names == {"hello-1.0-0.conda", "hello-1.1-0.conda", "later-1.0-0.conda"}
    fresh = Indexer(runtime.sessions, blobs=runtime.blobs)
    assert set(json.loads(fresh.publication(cid, "noarch").file("repodata.json"))["packages.conda"]) == names


def test_prune_is_due_once_a_day():
    due = list(maintenance.due(datetime(2026, 5, 1, 3, 17, 40, tzinfo=UTC)))
    assert [d.job for d in due] == [maintenance.PRUNE_JOB] and due[0].fire_at.second == 0
    assert not list(maintenance.due(datetime(2026, 5, 1, 3, 18, tzinfo=UTC)))


def test_blob_cleanup_is_due_once_a_day():
    due = list(maintenance.due(datetime(2026, 5, 1, 4, 41, 5, tzinfo=UTC)))
    assert [d.job for d in due] == [maintenance.BLOB_DAILY_JOB]
    assert not list(maintenance.due(datetime(2026, 5, 1, 4, 42, tzinfo=UTC)))


def test_daily_blob_cleanup_reclaims_unreferenced_old_blobs(runtime, conda_packages):
    import os
    import time

    from taipan.db.maintenance import BlobCleanup
    from taipan.services import artifacts

    p = admin_principal(runtime)
    with runtime.sessions() as db:
        channels.create_channel(db, p, "daily")
        db.commit()
    put(runtime, p, "daily", conda_packages["hello"])
    put(runtime, p, "daily", conda_packages["world"])
    with runtime.sessions() as db:
        ch = channels.get_channel(db, "daily")
        artifacts.bulk(db, p, ch, "delete", [{"name": "world"}], None, None)
        db.commit()
    old = time.time() - 7200
    for b in runtime.blobs.iter_blobs():
        os.utime(runtime.blobs.local_path(b.name), (old, old))
    runtime.jobs.registry.run(maintenance.BLOB_DAILY_JOB, {})
    import hashlib
    world = hashlib.sha256(conda_packages["world"].read_bytes()).hexdigest()
    hello = hashlib.sha256(conda_packages["hello"].read_bytes()).hexdigest()
    assert {b.name for b in runtime.blobs.iter_blobs()} == {hello}
    with runtime.sessions() as db:
        row = db.scalars(select(BlobCleanup)).one()
        assert (row.state, row.scheduled, row.deleted, row.kept) == ("done", True, 1, 0)
        assert [o[0] for o in row.orphans] == [world]
