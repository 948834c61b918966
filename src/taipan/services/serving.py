"""Read-side queries for package serving: one file by ckey, and channeldata.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, load_only, sessionmaker

from taipan.db.models import File, HeldChange
from taipan.domain.repodata import channeldata as build_channeldata
from taipan.domain.repodata import version_key
from taipan.errors import NotFound
from taipan.services.indexing import held_query, offered


def http_now() -> str:
    return format_datetime(datetime.now(UTC).replace(microsecond=0), usegmt=True)


def find_file(sessions: sessionmaker[Session], channel_id: str, ckey: str) -> File:
    """The file a download (or its metadata) names. A file withheld by the channel's CVE filters, or
    written to the channel while it is frozen (not published until it is unfrozen), is not found: the
    same 404 as a file the channel does not have, whatever the caller may see."""
    with sessions() as db:
        f = db.scalar(select(File).where(File.channel_id == channel_id, File.ckey == ckey, offered()))
    if f is None:
        raise NotFound(f"{ckey} is not in this channel", "Check the file name against repodata.json",
                       code="file_not_found")
    return f


def partition_files(sessions: sessionmaker[Session], channel_id: str, family: str, partition: str,
                    limit: int) -> list[File]:
    """Up to ``limit`` files of a partition that may be downloaded now (active, offered), with
    only what a download needs (``web.repo.stored.StoredFile``), in one query: the lookups of a
    partition's files at once, rather than one query per file."""
    with sessions() as db:
        return list(db.scalars(
            select(File).options(load_only(File.id, File.family, File.name, File.version, File.ckey, File.subdir,
                                           File.filename, File.size, File.sha256, raiseload=True))
            .where(File.channel_id == channel_id, File.subdir == partition, File.family == family,
                   File.state == "active", offered())
            .limit(limit)))


def channeldata(sessions: sessionmaker[Session], channel_id: str, channel_path: str) -> bytes:
    """conda's channeldata.json: the files the subdirs' indexes list (not withheld ones, nor those
    held while the channel is frozen)."""
    latest: dict[str, dict[str, Any]] = {}
    subdirs: dict[str, set[str]] = {}
    with sessions() as db:
        held = {(s, f) for s, f in db.execute(select(HeldChange.subdir, HeldChange.filename)
                                              .where(HeldChange.channel_id == channel_id,
                                                     HeldChange.pending.is_(None)))}
        rows = db.execute(select(File.name, File.version, File.subdir, File.meta, File.filename)
                          .where(File.channel_id == channel_id, File.family == "conda", File.withheld.is_(False)))
        for name, version, subdir, meta, filename in rows:
            if held and (subdir, filename) in held:
                continue
            subdirs.setdefault(name, set()).add(subdir)
            cur = latest.get(name)
            if cur is None or version_key(version) > version_key(cur["version"]):
                about = (meta or {}).get("about.json", {})
                index = (meta or {}).get("index.json", {})
                latest[name] = {"version": version, "license": index.get("license"),
                                "timestamp": index.get("timestamp"), **{
                                    k: about.get(k) for k in ("summary", "description", "home",
                                                              "doc_url", "dev_url")}}
    for name, rec in latest.items():
        rec["subdirs"] = sorted(subdirs[name])
    all_subdirs = {s for v in subdirs.values() for s in v}
    data = build_channeldata(channel_path, all_subdirs, latest)
    return json.dumps(data, sort_keys=True).encode()


def versions_in(sessions: sessionmaker[Session], channel_id: str, family: str, subdir: str,
                name: str) -> list[str]:
    """Every version of a package in one partition of a channel that its index may list (e.g. to tell
    R's current source package from its archived ones): withheld files are not among them, nor files
    held while the channel is frozen."""
    with sessions() as db:
        return list(db.scalars(select(File.version).where(
            File.channel_id == channel_id, File.family == family, File.subdir == subdir, File.name == name,
            File.withheld.is_(False), File.filename.not_in(held_query(channel_id, subdir)))))
