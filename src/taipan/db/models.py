"""SQLAlchemy 2 models. One row per user, token, channel, stored file, event and download."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned timezone-aware (SQLite drops tzinfo otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    last_failed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # None until the first password login, which is when the user's own channel may be created.
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Token(Base):
    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the secret: tokens are long random strings, so a fast hash is safe and allows lookup.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="scope")  # scope | session
    scopes: Mapped[list[Any]] = mapped_column(default=list)
    resources: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    # The last refresh (PUT /api/account/tokens/<id>); a refresh renews the token's lifetime from then.
    refreshed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    user: Mapped[User] = relationship(lazy="joined")


class ChannelOwner(Base):
    __tablename__ = "channel_owners"
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class Channel(Base):
    __tablename__ = "channels"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64))
    # "chan" or "chan/sub": unique, and what URLs are resolved by.
    path: Mapped[str] = mapped_column(String(130), unique=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), nullable=True, index=True)
    privacy: Mapped[str] = mapped_column(String(16), default="public")
    description: Mapped[str] = mapped_column(Text, default="")
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    filters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    download_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created: Mapped[datetime] = mapped_column(default=utcnow)
    updated: Mapped[datetime] = mapped_column(default=utcnow)
    owners: Mapped[list[User]] = relationship(secondary="channel_owners", lazy="selectin")
    parent: Mapped[Channel | None] = relationship(remote_side="Channel.id", lazy="joined")


class ChannelEvent(Base):
    __tablename__ = "channel_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), default=new_id)
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    event_type: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class File(Base):
    """One stored artifact file in one channel. Copies share the blob (same sha256)."""

    __tablename__ = "files"
    __table_args__ = (
        UniqueConstraint("channel_id", "ckey", name="uq_files_channel_ckey"),
        Index("ix_files_channel_family_name", "channel_id", "family", "name"),
        # Files by partition, and by partition and name: the rows an index refresh reads (without
        # the name, a refresh read every row of the partition: 0.46 s at 1M records).
        Index("ix_files_channel_subdir_filename", "channel_id", "subdir", "filename"),
        Index("ix_files_name", "name"),
        # The channels holding withheld files (a few rows), looked up on every upload and CVE match:
        # without it, a scan of every file (0.1 s at 100k files, 1 s at 1M).
        Index("ix_files_withheld_channel", "channel_id", sqlite_where=text("withheld = 1"),
              postgresql_where=text("withheld")),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    family: Mapped[str] = mapped_column(String(32), default="conda")
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    subdir: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    ckey: Mapped[str] = mapped_column(String(300))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    md5: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(BigInteger)
    record: Mapped[str] = mapped_column(Text)  # canonical repodata record JSON
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)  # index.json, about.json
    state: Mapped[str] = mapped_column(String(16), default="active")  # active | passive
    # The highest score among the file's CVEs that are not cleared or disputed, and the most pressing
    # status among them (see taipan.domain.cve); null when no CVE matches.
    cve_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    cve_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Kept out of the channel's index because it breaks the channel's CVE filters (not deleted; it
    # comes back when it no longer does).
    withheld: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    source_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    mirror_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    download_count: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IndexChange(Base):
    """Append-only log of which (channel, subdir, filename) changed: indexers replay it."""

    __tablename__ = "index_changes"
    __table_args__ = (Index("ix_index_changes_channel_subdir_seq", "channel_id", "subdir", "seq"),)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel_id: Mapped[str] = mapped_column(String(36))
    subdir: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(255))
    created: Mapped[datetime] = mapped_column(default=utcnow)


class HeldChange(Base):
    """A file changed (uploaded, replaced by a mirror run) while its channel was frozen: the change is
    kept here instead of in the index log, so that the frozen channel's index does not publish it, and
    logged when the channel is unfrozen. Files withheld, restored or removed meanwhile are logged at
    once: a frozen index never offers a file that its channel's CVE filters block or that is gone.

    A new file (``pending`` None) is in ``files`` already and is served nowhere until then. A file the
    frozen channel had, replaced by a mirror run, keeps its row as it was (its index lists it and its
    URL serves those bytes): ``pending`` holds the row's new values, written to it on unfreeze, and
    ``sha256`` their blob, which blob cleanup keeps meanwhile."""

    __tablename__ = "held_changes"
    channel_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subdir: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(255), primary_key=True)
    pending: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class IndexPublication(Base):
    """The pointer to a partition's current publication: its files are blobs (by sha256) in the
    blob store. Every API process serves the files the pointer names; ``seq`` is the index log
    position the publication reflects. ``manifest``: {"files": {name: [sha256, size]},
    "media_types": {...}, "etags": {...}, "lazy": [names derived on demand]}."""

    __tablename__ = "index_publications"
    channel_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subdir: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    etag_base: Mapped[str] = mapped_column(String(64))
    last_modified: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Download(Base):
    __tablename__ = "downloads"
    __table_args__ = (Index("ix_downloads_channel_at", "channel_id", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    channel_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    channel_path: Mapped[str] = mapped_column(String(130))
    file_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    family: Mapped[str] = mapped_column(String(32), default="conda")
    package: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str] = mapped_column(String(255), default="")
    ckey: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    remote_addr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # For the download report (0006): what the file and credential were at download time.
    token_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    subdir: Mapped[str | None] = mapped_column(String(64), nullable=True)
    filename: Mapped[str | None] = mapped_column(String(255), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cve_ids: Mapped[str | None] = mapped_column(Text, nullable=True)  # space-separated
    cve_score: Mapped[float | None] = mapped_column(Float, nullable=True)


class Setting(Base):
    """Server-wide settings editable at run time (/api/system/settings)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
