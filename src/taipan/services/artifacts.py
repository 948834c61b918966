"""Artifacts (packages) and their files in channels: listings, search, and bulk copy/move/delete."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from taipan.db.cves import CveFile
from taipan.db.models import Channel, File, utcnow
from taipan.domain import families
from taipan.domain.families import Family
from taipan.domain.permissions import Principal
from taipan.errors import ChannelFrozen, Conflict, InvalidInput, NotFound
from taipan.services import cve_enforcement, cve_matching
from taipan.services.channels import (
    add_event,
    can_read,
    effective_privacy,
    get_channel,
    kind_of,
    require_read,
    require_write,
)
from taipan.services.indexing import log_changes

BULK_ACTIONS = ("copy", "move", "delete")
check_family = families.check_known


def channel_parts(channel: Channel) -> tuple[str, str | None]:
    return (channel.parent.name, channel.name) if channel.parent else (channel.name, None)


def _family(name: str) -> Family | None:
    try:
        return families.get(name)
    except InvalidInput:  # rows of a family this server no longer implements still list
        return None


def _stored_name(family: str, name: str) -> str:
    """A package name as the family stores it (a Python name is stored PEP 503-normalized)."""
    fam = _family(family)
    return fam.normalize_name(name) if fam is not None else name


def file_json(f: File, channel: Channel, base_url: str) -> dict[str, Any]:
    top, sub = channel_parts(channel)
    channel_url = f"{base_url}/api/repo/{channel.path}"
    url = f"{channel_url}/{f.ckey}"
    family = _family(f.family)
    record = json.loads(f.record)
    metadata = (family.file_metadata(f.meta or {}, record, filename=f.filename, channel_url=channel_url, url=url)
                if family else dict(f.meta or {}))
    return {
        "id": f.id, "ckey": f.ckey, "name": f.filename, "family": f.family,
        "type": family.file_type(f.filename) if family else f.family,
        "channel": top, "subchannel": sub, "package": f.name, "version": f.version,
        "platform": f.subdir, "subdir": f.subdir,
        "metadata": metadata,
        "signatures": [], "state": f.state, "size": f.size, "sha256": f.sha256, "md5": f.md5,
        "download_count": f.download_count,
        "created_at": f.created_at.isoformat(), "updated_at": f.updated_at.isoformat(),
        "url": url, "cve_status": f.cve_status, "cve_score": f.cve_score,
    }


def _package_json(name: str, family_name: str, files: list[File], channel: Channel,
                  cve_count: int = 0) -> dict[str, Any]:
    top, sub = channel_parts(channel)
    family = _family(family_name)
    key = family.version_key if family else str
    latest = max(files, key=lambda f: (key(f.version), f.created_at))
    subdirs = sorted({f.subdir for f in files})
    metadata = (family.package_metadata(name, latest.meta or {}, subdirs, channel.path) if family
                else {"name": name, "version": latest.version, "subdirs": subdirs})
    metadata.setdefault("version", latest.version)
    return {
        "name": name, "family": family_name, "channel": top, "subchannel": sub, "channel_path": channel.path,
        "privacy": effective_privacy(channel), "metadata": metadata,
        "download_count": sum(f.download_count for f in files), "file_count": len(files),
        "cve_count": cve_count, "updated_at": max(f.updated_at for f in files).isoformat(),
    }


def list_artifacts(db: Session, p: Principal, channel: Channel, offset: int, limit: int,
                   q: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    require_read(p, channel, f"{kind_of(channel)}:view-artifacts")
    names_q = select(File.family, File.name).where(File.channel_id == channel.id)
    if q:
        names_q = names_q.where(File.name.contains(q))
    names_q = names_q.group_by(File.family, File.name)
    total = db.scalar(select(func.count()).select_from(names_q.subquery())) or 0
    page = db.execute(names_q.order_by(File.name, File.family).offset(offset).limit(limit)).all()
    return total, _packages_for(db, channel, page)


def _packages_for(db: Session, channel: Channel, keys: list[Any]) -> list[dict[str, Any]]:
    if not keys:
        return []
    names = {name for _, name in keys}
    grouped: dict[tuple[str, str], list[File]] = defaultdict(list)
    for f in db.scalars(select(File).where(File.channel_id == channel.id, File.name.in_(names))):
        grouped[(f.family, f.name)].append(f)
    counts = _cve_counts(db, [f.id for files in grouped.values() for f in files])
    return [_package_json(name, fam, grouped[(fam, name)], channel,
                          len(set().union(*(counts.get(f.id, set()) for f in grouped[(fam, name)]))))
            for fam, name in keys if grouped.get((fam, name))]


def _cve_counts(db: Session, file_ids: list[str]) -> dict[str, set[str]]:
    """The CVE ids matched to each of these files (a package's cve_count counts them once)."""
    out: dict[str, set[str]] = defaultdict(set)
    for i in range(0, len(file_ids), 500):
        for fid, cid in db.execute(select(CveFile.file_id, CveFile.cve_id)
                                   .where(CveFile.file_id.in_(file_ids[i:i + 500]))):
            out[fid].add(cid)
    return out


def list_files(db: Session, p: Principal, channel: Channel, family: str, package: str,
               offset: int, limit: int) -> tuple[int, list[File]]:
    require_read(p, channel, f"{kind_of(channel)}:view-artifacts")
    check_family(family)
    cond = (File.channel_id == channel.id, File.family == family, File.name == _stored_name(family, package))
    total = db.scalar(select(func.count()).select_from(File).where(*cond)) or 0
    if total == 0:
        raise NotFound(f"No package {package!r} ({family}) in channel {channel.path!r}",
                       "List the channel's packages with `conda repo channel --list-packages`",
                       code="package_not_found")
    q = select(File).where(*cond).order_by(File.subdir, File.filename).offset(offset)
    if limit:
        q = q.limit(limit)
    return total, list(db.scalars(q))


SEARCH_SORT_KEYS = ("download_count", "name", "updated_at")


def _search_order(sort: str) -> list[Any]:
    """`download_count`, `name` or `updated_at`, with `-` for descending; ties go by name."""
    key = sort.strip().lstrip("+-")
    columns = {"download_count": func.sum(File.download_count), "name": File.name,
               "updated_at": func.max(File.updated_at)}
    if key not in columns:
        raise InvalidInput(f"Cannot sort by {sort!r}",
                           f"Sort by {', '.join(SEARCH_SORT_KEYS)}; prefix - for descending",
                           code="invalid_sort")
    column = columns[key]
    return [column.desc() if sort.strip().startswith("-") else column.asc(), File.name, File.channel_id]


def search(db: Session, p: Principal, q: str, offset: int, limit: int,
           family: str | None = None, sort: str = "-download_count") -> tuple[int, list[dict[str, Any]]]:
    order = _search_order(sort)
    channels = {c.id: c for c in db.scalars(select(Channel))}
    visible = [cid for cid, c in channels.items()
               if can_read(p, c)
               and (not p.authenticated or p.has_scope("artifact:view"))]
    if not visible:
        return 0, []
    pattern = f"%{q.lower()}%"
    keys_q = (select(File.channel_id, File.family, File.name)
              .where(File.channel_id.in_(visible), or_(func.lower(File.name).like(pattern)))
              .where(*([File.family == check_family(family)] if family else []))
              .group_by(File.channel_id, File.family, File.name))
    total = db.scalar(select(func.count()).select_from(keys_q.subquery())) or 0
    page = db.execute(keys_q.order_by(*order).offset(offset).limit(limit)).all()
    out = []
    for cid, fam, name in page:
        out.extend(_packages_for(db, channels[cid], [(fam, name)]))
    return total, out


def _select_files(db: Session, channel: Channel, items: list[dict[str, Any]]) -> list[File]:
    if not isinstance(items, list) or not items:
        raise InvalidInput("No items given", "Send items: [{name, family, ckey?}]", code="invalid_bulk")
    selected: dict[str, File] = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("name"):
            raise InvalidInput("Each item needs a name", "Send items: [{name, family, ckey?}]",
                               code="invalid_bulk")
        family = check_family(item.get("family") or "conda")
        q = select(File).where(File.channel_id == channel.id, File.family == family,
                               File.name == _stored_name(family, str(item["name"])))
        if item.get("ckey"):
            q = q.where(File.ckey == item["ckey"])
        found = list(db.scalars(q))
        if not found:
            what = item.get("ckey") or item["name"]
            raise NotFound(f"{what} is not in channel {channel.path!r}",
                           "Check the package name and version with `conda repo channel --list-files`",
                           code="package_not_found")
        selected.update({f.id: f for f in found})
    return list(selected.values())


def bulk(db: Session, p: Principal, channel: Channel, action: str, items: list[dict[str, Any]],
         target_channel: str | None, target_subchannel: str | None) -> dict[str, list[tuple[str, str]]]:
    """Copy, move or delete files; return {channel_id: [(subdir, filename)]} changed, for indexing."""
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"Unknown bulk action {action!r}", f"Use one of: {', '.join(BULK_ACTIONS)}",
                           code="invalid_bulk")
    # Rights first: a caller who may not see or change the channel learns nothing about its
    # contents or its frozen state from the answer.
    target = None
    if action == "delete":
        require_write(p, channel, "artifact:delete")
    else:
        require_read(p, channel, "artifact:view")
        if action == "move":
            require_write(p, channel, "artifact:delete")
        target = _target(db, p, channel, target_channel, target_subchannel)
    if channel.frozen:
        raise ChannelFrozen(f"Channel {channel.path!r} is frozen", "Unfreeze it first", code="channel_frozen")
    files = _select_files(db, channel, items)
    changed: dict[str, list[tuple[str, str]]] = defaultdict(list)
    if target is not None:
        _copy_into(db, files, target)
        changed[target.id] = [(f.subdir, f.filename) for f in files]
        add_event(db, target, f"artifacts_{action}_in", p, source=channel.path,
                  ckeys=[f.ckey for f in files])
    if action in ("delete", "move"):
        for f in files:
            db.delete(f)
        changed[channel.id] += [(f.subdir, f.filename) for f in files]
        add_event(db, channel, "artifacts_deleted" if action == "delete" else "artifacts_moved_out", p,
                  ckeys=[f.ckey for f in files])
    for cid, ch in changed.items():
        log_changes(db, cid, ch)
    return dict(changed)


def _target(db: Session, p: Principal, source: Channel, target_channel: str | None,
            target_sub: str | None) -> Channel:
    if not target_channel:
        raise InvalidInput("No destination channel given", "Pass target_channel (conda repo copy -d CH)",
                           code="invalid_bulk")
    path = f"{target_channel}/{target_sub}" if target_sub else target_channel
    target = get_channel(db, path)
    require_write(p, target, "artifact:create")
    if target.id == source.id:
        raise InvalidInput("The destination is the source channel", "Choose another destination",
                           code="invalid_bulk")
    if target.frozen:
        raise ChannelFrozen(f"Channel {target.path!r} is frozen", "Unfreeze it first", code="channel_frozen")
    return target


def _copy_into(db: Session, files: list[File], target: Channel) -> None:
    existing = set(db.scalars(select(File.ckey).where(File.channel_id == target.id,
                                                      File.ckey.in_([f.ckey for f in files]))))
    clash = sorted(f.ckey for f in files if f.ckey in existing)
    if clash:
        raise Conflict(f"{', '.join(clash[:5])} already exist(s) in {target.path!r}",
                       "Remove them from the destination first", code="file_exists")
    for f in files:  # the destination's filters apply to copies as to uploads
        cve_enforcement.check_channel_filters(db, target, f.family, {**json.loads(f.record), "name": f.name,
                                                                     "version": f.version}, f.subdir)
    now = utcnow()
    for f in files:  # a copy shares the stored blob: same sha256, new row
        db.add(File(channel_id=target.id, family=f.family, name=f.name, version=f.version, subdir=f.subdir,
                    filename=f.filename, ckey=f.ckey, sha256=f.sha256, md5=f.md5, size=f.size,
                    record=f.record, meta=f.meta, state=f.state, source_url=f.source_url,
                    created_at=now, updated_at=now))
    db.flush()
    cve_matching.match_files(db, and_(File.channel_id == target.id, File.ckey.in_([f.ckey for f in files])))
