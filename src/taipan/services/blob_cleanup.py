"""Reclaiming storage: blobs no file row references, and scratch files that killed uploads and
downloads left behind.

A cleanup is a row in ``blob_cleanups`` that moves queued -> scanning -> found -> deleting -> done
(or cancelled / failed). The scan and the deletion run as jobs; an admin starts the scan, looks at
what it found, then deletes it or cancels. A daily job does both at once.

What is never deleted:
- a blob that any file row references (any channel, any state: active, passive, mirrored);
- a blob or scratch file written or touched within ``GRACE`` (an upload between storing its blob
  and committing its row, a passive fetch, a download in progress); storing a blob that already
  exists touches it, so a new reference to an old orphan protects it;
- a blob stored since the oldest mirror sync still running began (a sync stores its files long
  before it commits their rows);
- a blob that is touched or gains a reference while it is being deleted (see BlobStore.reclaim).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.maintenance import BlobCleanup
from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File, HeldChange
from taipan.domain.permissions import Principal
from taipan.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from taipan.services.indexing import published_blobs
from taipan.storage.base import BlobStore, StoredItem

GRACE = timedelta(hours=1)
MAX_ORPHANS = 100_000  # per cleanup; the next one continues
MAX_CANDIDATES = 10_000
BATCH = 500
ACTIVE = ("queued", "scanning", "deleting")
_SHA = re.compile(r"^[0-9a-f]{64}$")


def now() -> datetime:
    return datetime.now(UTC)


def require_admin(p: Principal, scope: str) -> None:
    """System maintenance is for admins, with a credential carrying ``scope``."""
    if not p.authenticated:
        raise Unauthenticated("This action requires authentication", "Log in as an administrator",
                              code="authentication_required")
    if not p.is_admin:
        raise Forbidden("Only administrators can inspect and clean the blob store",
                        "Ask an administrator", code="admin_required")
    if not p.has_scope(scope):
        raise Forbidden(f"Your token does not have the {scope!r} scope",
                        "Use a login session or a token with that scope", code="insufficient_scope")


def cleanup_json(c: BlobCleanup, *, listed: int = 1000) -> dict[str, Any]:
    def iso(d: datetime | None) -> str | None:
        return d.isoformat() if d else None

    return {
        "id": c.id, "state": c.state, "requested_by": c.requested_by, "scheduled": c.scheduled,
        "created_at": iso(c.created_at), "started_at": iso(c.started_at), "finished_at": iso(c.finished_at),
        "candidates": None if c.candidates is None else len(c.candidates), "scanned": c.scanned,
        "orphan_count": len(c.orphans or []), "orphan_bytes": c.orphan_bytes, "truncated": c.truncated,
        "orphans": [sha for sha, _ in (c.orphans or [])[:listed]],
        "stale_scratch_count": c.stale_scratch, "stale_scratch_bytes": c.stale_scratch_bytes,
        "deleted_count": c.deleted, "deleted_bytes": c.deleted_bytes, "kept_count": c.kept,
        "scratch_removed": c.scratch_removed, "error": c.error,
        "grace_seconds": int(GRACE.total_seconds()),
    }


def latest(db: Session) -> BlobCleanup | None:
    return db.scalar(select(BlobCleanup).order_by(BlobCleanup.created_at.desc()).limit(1))


def check_candidates(candidates: Any) -> list[str] | None:
    """None (the whole store) or a list of sha256 digests, as the API may send them."""
    if candidates is None:
        return None
    if not isinstance(candidates, list) or len(candidates) > MAX_CANDIDATES \
            or not all(isinstance(s, str) and _SHA.match(s) for s in candidates):
        raise InvalidInput("Send a JSON array of sha256 digests (64 lowercase hex characters)",
                           f"At most {MAX_CANDIDATES}; send nothing (or []) to scan the whole store",
                           code="invalid_candidates")
    return sorted(set(candidates)) or None


def start(db: Session, requested_by: str | None, candidates: list[str] | None, *,
          scheduled: bool = False) -> BlobCleanup:
    """Record a new cleanup (the caller commits, then enqueues the scan job)."""
    running = db.scalar(select(BlobCleanup).where(BlobCleanup.state.in_(ACTIVE)).limit(1))
    if running is not None:
        raise Conflict(f"A blob cleanup is already {running.state}",
                       "Wait for it (GET /api/system/blob_cleanup), or cancel it with DELETE",
                       code="blob_cleanup_running")
    row = BlobCleanup(requested_by=requested_by, candidates=candidates, scheduled=scheduled)
    db.add(row)
    db.flush()
    return row


def request_delete(db: Session) -> tuple[BlobCleanup, bool]:
    """DELETE: cancel the latest cleanup while it is queued or scanning, or start deleting what it
    found. Return the row and whether the deletion job must be enqueued (after commit)."""
    row = latest(db)
    if row is None or row.state in ("done", "cancelled", "failed"):
        raise NotFound("There is no blob cleanup to delete or cancel",
                       "Start one with POST /api/system/blob_cleanup", code="no_blob_cleanup")
    if row.state == "deleting":
        raise Conflict("The blob cleanup is already deleting", "Wait for it: GET /api/system/blob_cleanup",
                       code="blob_cleanup_running")
    if row.state == "found":
        _move(db, row, ("found",), "deleting")
        return row, True
    _move(db, row, ("queued", "scanning"), "cancelled", finished_at=now())
    return row, False


def _move(db: Session, row: BlobCleanup, from_states: tuple[str, ...], to: str, **values: Any) -> None:
    """Compare-and-set of the state: whoever moves it first wins; everyone else gets a conflict."""
    res = db.execute(update(BlobCleanup).where(BlobCleanup.id == row.id, BlobCleanup.state.in_(from_states))
                     .values(state=to, **values).execution_options(synchronize_session=False))
    if res.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("The blob cleanup changed meanwhile", "Look at it again: GET /api/system/blob_cleanup",
                       code="blob_cleanup_changed")
    db.refresh(row)


def _claim(sessions: sessionmaker[Session], cid: str, from_states: tuple[str, ...], to: str,
           **values: Any) -> bool:
    with sessions() as db, db.begin():
        res = db.execute(update(BlobCleanup).where(BlobCleanup.id == cid, BlobCleanup.state.in_(from_states))
                         .values(state=to, **values))
        return res.rowcount == 1  # type: ignore[attr-defined]


def _state(sessions: sessionmaker[Session], cid: str) -> str | None:
    with sessions() as db:
        return db.scalar(select(BlobCleanup.state).where(BlobCleanup.id == cid))


def protected_since(db: Session, at: datetime) -> float:
    """Blobs and scratch files written or touched at or after this instant (epoch seconds) are kept."""
    cutoff = at - GRACE
    oldest_sync = db.scalar(select(func.min(Mirror.last_run_at)).where(Mirror.state == "running"))
    if oldest_sync is not None:
        if oldest_sync.tzinfo is None:
            oldest_sync = oldest_sync.replace(tzinfo=UTC)
        cutoff = min(cutoff, oldest_sync - timedelta(minutes=1))
    return cutoff.timestamp()


def _batches(items: Iterable[StoredItem | None], size: int) -> Iterator[list[StoredItem | None]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def referenced(db: Session, digests: list[str], published: set[str]) -> set[str]:
    """The digests that a file, a replacement held in a frozen channel or a current index publication
    (``published``) refers to."""
    used = set(db.scalars(select(File.sha256).where(File.sha256.in_(digests)).distinct()))
    used.update(db.scalars(select(HeldChange.sha256).where(HeldChange.sha256.in_(digests)).distinct()))
    return used | published.intersection(digests)


def scan(sessions: sessionmaker[Session], blobs: BlobStore, cid: str) -> None:
    """The scan job: find unreferenced blobs and stale scratch files; stop early if cancelled."""
    started = now()
    if not _claim(sessions, cid, ("queued",), "scanning", started_at=started):
        return  # cancelled before it ran, or another worker has it
    try:
        with sessions() as db:
            limit = protected_since(db, started)
            candidates = db.scalar(select(BlobCleanup.candidates).where(BlobCleanup.id == cid))
            published = published_blobs(db, blobs)
        items: Iterable[StoredItem | None] = (
            blobs.iter_blobs() if candidates is None else (blobs.stat(s) for s in candidates))
        orphans: list[list[Any]] = []
        scanned, truncated = 0, False
        for batch in _batches(items, BATCH):
            if _state(sessions, cid) != "scanning":
                return  # cancelled
            scanned += len(batch)
            old = [b for b in batch if b is not None and b.mtime < limit]
            if old:
                with sessions() as db:
                    used = referenced(db, [b.name for b in old], published)
                orphans += [[b.name, b.size] for b in old if b.name not in used]
            if len(orphans) >= MAX_ORPHANS:
                orphans, truncated = orphans[:MAX_ORPHANS], True
                break
        stale = [f for f in blobs.scratch_files() if f.mtime < (started - GRACE).timestamp()]
        _claim(sessions, cid, ("scanning",), "found", finished_at=now(), scanned=scanned, orphans=orphans,
               orphan_bytes=sum(size for _, size in orphans), truncated=truncated, stale_scratch=len(stale),
               stale_scratch_bytes=sum(f.size for f in stale))
    except Exception as exc:
        _claim(sessions, cid, ("scanning",), "failed", finished_at=now(),
               error=f"{type(exc).__name__}: {str(exc)[:300]}")
        raise


def delete(sessions: sessionmaker[Session], blobs: BlobStore, cid: str) -> None:
    """The deletion job: reclaim what the scan found, checking each blob again as it goes."""
    started = now()
    with sessions() as db:
        row = db.get(BlobCleanup, cid)
        if row is None or row.state != "deleting":
            return
        orphans = list(row.orphans or [])
        limit = protected_since(db, started)
        published = published_blobs(db, blobs)

    def unused(sha: str) -> bool:
        if sha in published:
            return False
        with sessions() as db:
            return not referenced(db, [sha], published)

    deleted = freed = kept = 0
    try:
        for sha, size in orphans:
            if blobs.reclaim(sha, limit, lambda sha=sha: unused(sha)):
                deleted, freed = deleted + 1, freed + size
            else:
                kept += 1
        scratch_limit = (started - GRACE).timestamp()
        removed = 0
        for f in list(blobs.scratch_files()):
            if f.mtime < scratch_limit and blobs.remove_scratch(f.name, scratch_limit):  # still stale
                removed, freed = removed + 1, freed + f.size
        _claim(sessions, cid, ("deleting",), "done", finished_at=now(), deleted=deleted, deleted_bytes=freed,
               kept=kept, scratch_removed=removed)
    except Exception as exc:
        _claim(sessions, cid, ("deleting",), "failed", finished_at=now(), deleted=deleted, deleted_bytes=freed,
               kept=kept, error=f"{type(exc).__name__}: {str(exc)[:300]}")
        raise


def daily(sessions: sessionmaker[Session], blobs: BlobStore) -> str | None:
    """The scheduled cleanup: scan and delete in one go (skipped while another cleanup is active)."""
    with sessions() as db:
        try:
            cid = start(db, None, None, scheduled=True).id
        except Conflict:
            return None
        db.commit()
    scan(sessions, blobs, cid)
    if _claim(sessions, cid, ("found",), "deleting"):
        delete(sessions, blobs, cid)
    return cid


# --- diagnostics ---------------------------------------------------------------------------------

def diagnose(db: Session, blobs: BlobStore, channel_names: list[str] | None) -> dict[str, Any]:
    """What the blob store holds against what the database expects (POST /api/diagnose/blobs)."""
    at = now()
    limit = protected_since(db, at)
    stored: dict[str, StoredItem] = {b.name: b for b in blobs.iter_blobs()}
    digests = list(stored)
    used: set[str] = set()
    published = published_blobs(db, blobs)
    for i in range(0, len(digests), BATCH):
        used |= referenced(db, digests[i:i + BATCH], published)
    orphans = [b for sha, b in stored.items() if sha not in used]
    scratch = list(blobs.scratch_files())
    scratch_limit = (at - GRACE).timestamp()
    report: dict[str, Any] = {
        "blob_count": len(stored), "blob_bytes": sum(b.size for b in stored.values()),
        "referenced_count": len(used),
        "orphan_count": sum(1 for b in orphans if b.mtime < limit),
        "orphan_bytes": sum(b.size for b in orphans if b.mtime < limit),
        "recent_orphan_count": sum(1 for b in orphans if b.mtime >= limit),
        "scratch_count": len(scratch), "scratch_bytes": sum(f.size for f in scratch),
        "stale_scratch_count": sum(1 for f in scratch if f.mtime < scratch_limit),
        "grace_seconds": int(GRACE.total_seconds()),
    }
    report["channels"] = _channel_report(db, stored, channel_names)
    return report


def _channel_report(db: Session, stored: dict[str, StoredItem],
                    channel_names: list[str] | None) -> list[dict[str, Any]]:
    q = select(Channel).order_by(Channel.path)
    if channel_names is not None:
        found = {c.path: c for c in db.scalars(q.where(Channel.path.in_(channel_names)))}
        missing = [n for n in channel_names if n not in found]
        if missing:
            raise NotFound(f"No channel named {missing[0]!r}", "Check the channel names",
                           code="channel_not_found")
        channels = [found[n] for n in channel_names]
    else:
        channels = list(db.scalars(q))
    out = []
    for ch in channels:
        rows = db.execute(select(File.ckey, File.sha256, File.size, File.state)
                          .where(File.channel_id == ch.id)).all()
        active = [r for r in rows if r.state == "active"]
        missing_blobs = [r for r in active if r.sha256 not in stored]
        wrong_size = [r for r in active if r.sha256 in stored and stored[r.sha256].size != r.size]
        out.append({
            "channel": ch.path, "file_count": len(rows), "active_count": len(active),
            "passive_count": len(rows) - len(active), "bytes": sum(r.size or 0 for r in active),
            "missing_count": len(missing_blobs), "missing": [r.ckey for r in missing_blobs[:100]],
            "size_mismatch_count": len(wrong_size), "size_mismatches": [r.ckey for r in wrong_size[:100]],
        })
    return out
