"""The CVE store: advisories, the packages they affect (indexed by package key), their matches to
files, curation history, and the admins' CPE product -> package names mapping."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from taipan.db.models import Base, utcnow


class Cve(Base):
    __tablename__ = "cves"
    __table_args__ = (Index("ix_cves_score", "score"), Index("ix_cves_published_at", "published_at"))
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    published_at: Mapped[datetime | None] = mapped_column(nullable=True)
    modified_at: Mapped[datetime] = mapped_column(default=utcnow)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    cvss2: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    cvss3: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    cvss4: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # {"nvd": "<lastModified>", "<OSV id>": "<modified>"}: a source changes only when its date moves.
    sources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    aliases: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="reported", index=True)
    status_note: Mapped[str] = mapped_column(Text, default="")
    status_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CveAffect(Base):
    """One affected package key of one source of a CVE. ``package`` is the key files are matched by:
    for an NVD CPE, each package name the product maps to (one row per name); for OSV, the
    ecosystem's normalised name."""

    __tablename__ = "cve_affects"
    __table_args__ = (Index("ix_cve_affects_ecosystem_package", "ecosystem", "package"),
                      Index("ix_cve_affects_cve_source", "cve_id", "source"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cve_id: Mapped[str] = mapped_column(ForeignKey("cves.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(64))
    ecosystem: Mapped[str] = mapped_column(String(16))
    product: Mapped[str] = mapped_column(String(255), index=True)   # cpe: vendor:product; OSV: the key
    package: Mapped[str] = mapped_column(String(255))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)


class CveFile(Base):
    __tablename__ = "cve_files"
    cve_id: Mapped[str] = mapped_column(ForeignKey("cves.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), primary_key=True, index=True)


class CveHistory(Base):
    __tablename__ = "cve_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cve_id: Mapped[str] = mapped_column(ForeignKey("cves.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)
    old_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    new_status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")


class CpeMapping(Base):
    """An admin's mapping of a CPE ``vendor:product`` to package names; it replaces the shipped one
    for that product (an empty list: the product names no package)."""

    __tablename__ = "cpe_mappings"
    product: Mapped[str] = mapped_column(String(255), primary_key=True)
    packages: Mapped[list[Any]] = mapped_column(default=list)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class CveSyncState(Base):
    """Where `taipan cve sync` stopped, per source URL: NVD's last lastModEndDate, OSV ETags."""

    __tablename__ = "cve_sync_state"
    url: Mapped[str] = mapped_column(String(1000), primary_key=True)
    etag: Mapped[str | None] = mapped_column(String(255), nullable=True)
    last_modified: Mapped[str | None] = mapped_column(String(64), nullable=True)
    synced_at: Mapped[datetime | None] = mapped_column(nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
