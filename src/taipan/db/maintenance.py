"""The blob_cleanups table: one row per blob cleanup, from its scan to its deletions.

A cleanup is started through the API (or the daily schedule), scanned by a job wherever jobs run,
and deleted or cancelled through the API; every step is a compare-and-set on ``state``, so any
process can run, observe or cancel it through the database alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taipan.db.models import Base, new_id, utcnow


class BlobCleanup(Base):
    __tablename__ = "blob_cleanups"
    __table_args__ = (Index("ix_blob_cleanups_created_at", "created_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # queued -> scanning -> found -> deleting -> done; or cancelled / failed
    state: Mapped[str] = mapped_column(String(16), default="queued")
    requested_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    scheduled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Only these sha256 digests were asked about (None: the whole store).
    candidates: Mapped[list[Any] | None] = mapped_column(nullable=True)
    scanned: Mapped[int] = mapped_column(Integer, default=0)
    # [[sha256, size], ...] of unreferenced blobs older than the grace period, when scanned.
    orphans: Mapped[list[Any]] = mapped_column(default=list)
    orphan_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    stale_scratch: Mapped[int] = mapped_column(Integer, default=0)
    stale_scratch_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    deleted: Mapped[int] = mapped_column(Integer, default=0)
    deleted_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    kept: Mapped[int] = mapped_column(Integer, default=0)
    scratch_removed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)
