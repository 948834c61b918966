"""One run of a conda mirror: fetch the upstream index, select, download (active), publish.

Nothing the clients see changes until the very end: the new file rows, the removed ones and their
IndexChange rows are written in ONE transaction, so a run that fails, is stopped or is killed leaves
the channel serving its last good index. Files downloaded before an interruption stay in the blob
store (and partial downloads on disk), so the next run only fetches what is still missing.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File, new_id, utcnow
from taipan.domain import filters as flt
from taipan.domain.repodata import record_bytes
from taipan.errors import TaipanError, UpstreamError
from taipan.services.indexing import log_changes
from taipan.storage.base import BlobStore
from taipan.upstreams.conda import CondaUpstream, partial_path, remove_quietly

log = logging.getLogger(__name__)
STEPS = ("Listing upstream subdirs", "Fetching upstream repodata", "Filtering records",
         "Fetching files", "Publishing the index")
STALE_AFTER = timedelta(seconds=60)
HEARTBEAT_SECONDS = 1.0


class Stopped(Exception):
    pass


@dataclass
class MirrorEnv:
    """What a mirror run needs from the outside world (built by the composition root)."""

    sessions: sessionmaker[Session]
    blobs: BlobStore
    notify: Callable[[str, set[str]], None] = lambda channel_id, subdirs: None
    enqueue: Callable[[str, dict[str, Any]], None] | None = None
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    upstream_factory: Callable[..., CondaUpstream] = CondaUpstream
    download_threads: int = 4


def initial_sync_state() -> dict[str, Any]:
    return {"last_ckey": None, "last_exception": None, "total_steps_count": len(STEPS),
            "current_step_number": 0, "current_step_percentage": 0, "current_step_description": "",
            "count": {"active": 0, "failed": 0, "passive": 0, "removed": 0, **flt.empty_counts()}}


def owner_alive(owner: str | None) -> bool:
    """False only when we can tell: the owner ran on this host and its process is gone."""
    if not owner or ":" not in owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(m: Mirror, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    if m.state != "running":
        return False
    return m.heartbeat_at is None or m.heartbeat_at < now - STALE_AFTER or not owner_alive(m.run_owner)


def claim(db: Session, mirror_id: str, owner: str) -> str | None:
    """Move a pending (or abandoned running) mirror to running for us; return the run id."""
    m = db.get(Mirror, mirror_id)
    if m is None or not (m.state == "pending" or is_stale(m)):
        return None
    run_id = str(uuid.uuid4())
    state = initial_sync_state()
    state.update(run_id=run_id, started_at=utcnow().isoformat(), worker=owner)
    res = db.execute(update(Mirror).where(Mirror.id == m.id, Mirror.state == m.state,
                                          Mirror.run_id.is_(None) if m.run_id is None
                                          else Mirror.run_id == m.run_id)
                     .values(state="running", run_id=run_id, run_owner=owner, heartbeat_at=utcnow(),
                             stop_requested=False, sync_state=state, last_run_at=utcnow()))
    db.commit()
    return run_id if res.rowcount == 1 else None


class Progress:
    """The run's sync_state, written (with a heartbeat) once a second by a background thread,
    which also notices a stop request or a lost claim."""

    def __init__(self, env: MirrorEnv, mirror_id: str, run_id: str, state: dict[str, Any]) -> None:
        self.env, self.mirror_id, self.run_id = env, mirror_id, run_id
        self.state = state
        self.stop = threading.Event()
        self.lost = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"mirror-{mirror_id[:8]}", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)

    def step(self, number: int, pct: float = 0) -> None:
        with self._lock:
            self.state.update(current_step_number=number, current_step_description=STEPS[number - 1],
                              current_step_percentage=round(pct))
        self.check()

    def percent(self, pct: float, last_ckey: str | None = None) -> None:
        with self._lock:
            self.state["current_step_percentage"] = round(pct)
            if last_ckey:
                self.state["last_ckey"] = last_ckey

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.state["count"][key] += n

    def check(self) -> None:
        if self.stop.is_set():
            raise Stopped("lost the run to another worker" if self.lost else "stopped on request")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return orjson.loads(orjson.dumps(self.state))

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                with self.env.sessions() as db:
                    res = db.execute(update(Mirror).where(Mirror.id == self.mirror_id,
                                                          Mirror.run_id == self.run_id)
                                     .values(heartbeat_at=utcnow(), sync_state=self.snapshot()))
                    stop = db.scalar(select(Mirror.stop_requested).where(Mirror.id == self.mirror_id))
                    db.commit()
                if res.rowcount == 0:
                    self.lost = True
                    self.stop.set()
                elif stop:
                    self.stop.set()
            except Exception:  # a busy database must not kill the run; try again next beat
                log.warning("mirror heartbeat failed", exc_info=True)


@dataclass
class Plan:
    add: list[dict[str, Any]]
    update: list[dict[str, Any]]
    remove: list[tuple[str, str, str]]  # (file id, subdir, filename)
    fetch: list[dict[str, Any]]  # rows to make active: download first


def run_mirror(env: MirrorEnv, mirror_id: str) -> str | None:
    """Run the mirror if it is ours to run; return its final state (None if someone else runs it)."""
    with env.sessions() as db:
        run_id = claim(db, mirror_id, env.owner)
        if run_id is None:
            return None
        m = db.get(Mirror, mirror_id)
        assert m is not None
        channel = db.get(Channel, m.channel_id)
        assert channel is not None
        db.expunge_all()
    state = dict(m.sync_state)
    final, error = "failed", None
    with Progress(env, mirror_id, run_id, state) as progress:
        try:
            _sync(env, m, channel, progress)
            final = "completed"
        except Stopped as exc:
            final, error = "stopped", str(exc)
        except TaipanError as exc:
            error = f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")
        except Exception as exc:  # report, never crash the worker
            log.exception("mirror %s failed", m.name)
            error = f"{type(exc).__name__}: {exc}"
    if progress.lost:
        return None
    snap = progress.snapshot()
    snap.update(last_exception=error, finished_at=utcnow().isoformat())
    if final == "completed":
        snap.update(current_step_number=len(STEPS), current_step_percentage=100,
                    current_step_description="Completed")
    with env.sessions() as db:
        db.execute(update(Mirror).where(Mirror.id == mirror_id, Mirror.run_id == run_id)
                   .values(state=final, sync_state=snap, heartbeat_at=utcnow(), run_id=None,
                           stop_requested=False, updated_at=utcnow()))
        db.commit()
    log.info("mirror %s: %s%s", m.name, final, f" ({error})" if error else "")
    return final


def _sync(env: MirrorEnv, m: Mirror, channel: Channel, progress: Progress) -> None:
    compiled = flt.compile_filters(m.filters or {}, _channel_filters(channel))
    with env.upstream_factory(m.source_root, proxy=m.proxy) as upstream:
        progress.step(1)
        subdirs = compiled.subdirs or upstream.subdirs()
        progress.step(2)
        upstream_records: dict[str, dict[str, Any]] = {}
        base_urls: dict[str, str | None] = {}
        for i, subdir in enumerate(subdirs):
            fetched = upstream.fetch_repodata(subdir)
            progress.percent(100 * (i + 1) / len(subdirs))
            progress.check()
            if fetched.missing or fetched.content is None:
                continue
            upstream_records[subdir], base_urls[subdir] = _parse_repodata(fetched.content)
        if not upstream_records:
            raise UpstreamError(f"The upstream has none of the subdirs {', '.join(subdirs)}",
                                "Check --subdirs against the upstream channel", code="upstream_no_subdirs")
        progress.step(3)
        started = time.perf_counter()
        sel = flt.select(upstream_records, compiled)
        elapsed = time.perf_counter() - started
        with progress._lock:
            progress.state["count"].update(sel.counts)
            progress.state.update(upstream_records=sel.evaluated, selected=sel.kept_count,
                                  filter_seconds=round(elapsed, 4),
                                  filter_rate=round(sel.evaluated / elapsed) if elapsed > 0 else None)
        del upstream_records
        progress.step(4)
        plan = _plan(env, m, channel, sel.kept, upstream, base_urls)
        _fetch_active(env, upstream, plan, progress)
    progress.step(5)
    _publish(env, m, channel, plan, progress)


def _channel_filters(channel: Channel) -> dict[str, Any]:
    # Only the mirror-relevant keys: a channel's filters object may carry other settings too.
    raw = channel.filters or {}
    return {k: raw[k] for k in (*flt.CHANNEL_FILTER_KEYS, "licenses") if k in raw}


def _parse_repodata(content: bytes) -> tuple[dict[str, Any], str | None]:
    data = orjson.loads(content)
    records = dict(data.get("packages") or {})
    records.update(data.get("packages.conda") or {})
    base_url = (data.get("info") or {}).get("base_url") or None
    return records, base_url


def _plan(env: MirrorEnv, m: Mirror, channel: Channel, kept: Mapping[str, Mapping[str, Any]],
          upstream: CondaUpstream, base_urls: Mapping[str, str | None]) -> Plan:
    with env.sessions() as db:
        rows = db.execute(select(File.id, File.ckey, File.mirror_id, File.record, File.state, File.sha256)
                          .where(File.channel_id == channel.id)).all()
    mine = {r.ckey: r for r in rows if r.mirror_id == m.id}
    others = {r.ckey for r in rows if r.mirror_id != m.id}
    plan = Plan([], [], [], [])
    now = utcnow()
    for subdir, records in kept.items():
        for fn, rec in records.items():
            ckey = f"{subdir}/{fn}"
            if ckey in others:  # uploaded, or another mirror's: never overwritten by this one
                continue
            text = record_bytes(rec).decode()
            old = mine.pop(ckey, None)
            same_bytes = old is not None and old.sha256 == (rec.get("sha256") or old.sha256)
            state = old.state if same_bytes else "passive"
            row = {"id": old.id if old else new_id(), "channel_id": channel.id, "family": "conda",
                   "name": str(rec.get("name", "")), "version": str(rec.get("version", "")),
                   "subdir": subdir, "filename": fn, "ckey": ckey,
                   "sha256": rec.get("sha256") or (old.sha256 if old else ""),
                   "md5": rec.get("md5") or "", "size": int(rec.get("size") or 0), "record": text,
                   "meta": {"index.json": {k: v for k, v in rec.items() if k not in ("sha256", "md5")}},
                   "state": state, "mirror_id": m.id, "updated_at": now,
                   "source_url": upstream.file_url(subdir, fn, base_urls.get(subdir))}
            needs_fetch = (m.mode == "active" or not row["sha256"]) and state != "active"
            if needs_fetch:
                plan.fetch.append(row)
            if old is None:
                row["created_at"] = now
                plan.add.append(row)
            elif old.record != text or not same_bytes or needs_fetch:
                plan.update.append(row)
    plan.remove = [(r.id, *r.ckey.split("/", 1)) for r in mine.values()]
    return plan


def _fetch_active(env: MirrorEnv, upstream: CondaUpstream, plan: Plan, progress: Progress) -> None:
    """Download what must be active; a file that fails is left out of this publication."""
    if not plan.fetch:
        return
    total, done = len(plan.fetch), 0
    failed: set[str] = set()
    lock = threading.Lock()

    def one(row: dict[str, Any]) -> None:
        nonlocal done
        progress.check()
        try:
            _download(env, upstream, row)
        except UpstreamError as exc:
            with lock:
                failed.add(row["id"])
                progress.state["last_exception"] = exc.message
            progress.count("failed")
        with lock:
            done += 1
            progress.percent(100 * done / total, row["ckey"])

    with ThreadPoolExecutor(env.download_threads, thread_name_prefix="mirror-dl") as pool:
        futures = [pool.submit(one, row) for row in plan.fetch]
        try:
            for fut in futures:
                fut.result()
        except Stopped:
            for fut in futures:
                fut.cancel()
            raise
    if failed:
        plan.add = [r for r in plan.add if r["id"] not in failed]
        # An existing row whose new bytes failed keeps its previous, good version.
        plan.update = [r for r in plan.update if r["id"] not in failed]


def _download(env: MirrorEnv, upstream: CondaUpstream, row: dict[str, Any]) -> None:
    sha = row["sha256"] or None
    if sha and env.blobs.exists(sha):
        row["state"] = "active"
        return
    dest = partial_path(env.blobs.tempdir(), sha, row["ckey"])
    got = upstream.download(row["source_url"], dest, sha256=sha, size=row["size"] or None)
    env.blobs.put_file(got.sha256, dest, move=True)
    remove_quietly(dest)
    row.update(state="active", sha256=got.sha256, md5=row["md5"] or got.md5, size=got.size)


def _publish(env: MirrorEnv, m: Mirror, channel: Channel, plan: Plan, progress: Progress) -> None:
    progress.check()
    changes = [(r["subdir"], r["filename"]) for r in plan.add + plan.update]
    changes += [(sd, fn) for _, sd, fn in plan.remove]
    with env.sessions() as db:
        for chunk in _chunks(plan.add, 2000):
            db.execute(insert(File), chunk)
        for chunk in _chunks(plan.update, 2000):
            db.execute(update(File), [{k: v for k, v in r.items() if k != "channel_id"} for r in chunk])
        for chunk in _chunks([r[0] for r in plan.remove], 500):
            db.execute(delete(File).where(File.id.in_(chunk)))
        log_changes(db, channel.id, changes)
        counts = dict(db.execute(select(File.state, func.count()).where(File.mirror_id == m.id)
                                 .group_by(File.state)).all())
        with progress._lock:
            progress.state["count"].update(active=counts.get("active", 0), passive=counts.get("passive", 0),
                                           removed=len(plan.remove))
        db.commit()
    env.notify(channel.id, {sd for sd, _ in changes})


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
