"""Housekeeping jobs: keep the append-only index log from growing without bound, and reclaim
blobs and scratch files nothing uses (see blob_cleanup)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.models import IndexChange
from taipan.jobs import DueRun, JobRegistry
from taipan.services import blob_cleanup
from taipan.storage.base import BlobStore

PRUNE_JOB = "maintenance.prune_index_log"
# Readers replay the log at least once a second; a day of history is far more than any needs.
KEEP = timedelta(days=1)
PRUNE_AT = (3, 17)  # daily, 03:17 UTC
BLOB_SCAN_JOB = "maintenance.blob_cleanup_scan"
BLOB_DELETE_JOB = "maintenance.blob_cleanup_delete"
BLOB_DAILY_JOB = "maintenance.blob_cleanup_daily"
BLOB_CLEANUP_AT = (4, 41)  # daily, 04:41 UTC


def prune_index_log(sessions: sessionmaker[Session], keep: timedelta = KEEP) -> int:
    """Delete log rows older than ``keep``, always keeping the newest row: SQLite hands out
    max(rowid)+1, so the newest row must stay for sequence numbers never to go backwards."""
    cutoff = datetime.now(UTC) - keep
    with sessions() as db, db.begin():
        newest = db.scalar(select(func.max(IndexChange.seq)))
        if newest is None:
            return 0
        result = db.execute(delete(IndexChange).where(IndexChange.created < cutoff, IndexChange.seq < newest))
        return int(result.rowcount or 0)


def register(registry: JobRegistry, sessions: sessionmaker[Session], blobs: BlobStore) -> None:
    def prune(_: dict[str, Any]) -> None:
        prune_index_log(sessions)

    registry.register(PRUNE_JOB, prune)
    registry.register(BLOB_SCAN_JOB, lambda payload: blob_cleanup.scan(sessions, blobs, payload["id"]))
    registry.register(BLOB_DELETE_JOB, lambda payload: blob_cleanup.delete(sessions, blobs, payload["id"]))
    registry.register(BLOB_DAILY_JOB, lambda _: blob_cleanup.daily(sessions, blobs))


def due(now: datetime) -> Iterable[DueRun]:
    """The daily jobs, once it is time (the scheduler deduplicates ticks within the minute)."""
    minute = now.replace(second=0, microsecond=0)
    if (now.hour, now.minute) == PRUNE_AT:
        yield DueRun(key="prune-index-log", fire_at=minute, job=PRUNE_JOB, payload={})
    if (now.hour, now.minute) == BLOB_CLEANUP_AT:
        yield DueRun(key="blob-cleanup", fire_at=minute, job=BLOB_DAILY_JOB, payload={})
