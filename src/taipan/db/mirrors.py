"""The mirrors table: one row per mirror of an upstream into a channel, with its run state.

A run is claimed with a compare-and-set on (state, run_id), kept alive by ``heartbeat_at``, and
stopped by setting ``stop_requested``; so any process (a ``taipan serve`` thread or a ``taipan
worker`` elsewhere) can run it, observe it, or stop it through the database alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from taipan.db.models import Base, new_id, utcnow


class Mirror(Base):
    __tablename__ = "mirrors"
    __table_args__ = (
        UniqueConstraint("channel_id", "name", name="uq_mirrors_channel_name"),
        Index("ix_mirrors_next_run_at", "next_run_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    mirror_type: Mapped[str] = mapped_column(String(32), default="conda")
    mode: Mapped[str] = mapped_column(String(16), default="passive")
    # The source and proxy as shown, credentials masked (https://***@host/t/***/ch); the real URLs,
    # when they carry credentials, are only in the *_secret columns, encrypted (storage/secrets.py).
    source_root: Mapped[str] = mapped_column(Text)
    source_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    cron: Mapped[str] = mapped_column(String(100), default="0 0 * * *")
    proxy: Mapped[str | None] = mapped_column(Text, nullable=True)
    proxy_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    sync_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Upstream validators (ETag / Last-Modified per subdir) and the filter digest of the last good run.
    cache: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    run_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(nullable=True)
    stop_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    next_run_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_run_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
