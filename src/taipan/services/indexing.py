"""Incremental conda indexing: per (channel, subdir), replay the IndexChange log into published bytes.

Writers (uploads, bulk actions, mirror syncs) insert ``IndexChange`` rows in the same transaction
as the file rows. Readers ask the ``Indexer`` for the current ``Publication`` of a subdir; it applies
whatever changes are new since the last look (all of them at once, so bursts are coalesced),
rebuilds only the shards of the package names that changed, re-joins the pre-serialized record
fragments into ``repodata.json`` and compresses it, and swaps in a new immutable ``Publication``.
Every derived file of one publication comes from the same bytes, so they are always consistent.
Other processes' writes are noticed by polling the log at most once per ``poll_interval``.
"""

from __future__ import annotations

import bz2
import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import orjson
import zstandard
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.models import Channel, File, IndexChange
from taipan.domain import repodata as rd
from taipan.errors import ServiceUnavailable

FORMAT_VERSION = "1"
# Above this size repodata.json.zst is compressed with several threads.
_MT_THRESHOLD = 4 * 1024 * 1024
# How long a request waits for another request's build of the same lazily derived file.
LAZY_BUILD_WAIT = 30.0


@dataclass
class Publication:
    """One immutable, consistent set of a subdir's index files."""

    subdir: str
    seq: int
    repodata: bytes
    zst: bytes
    shard_index: bytes
    shards: dict[str, bytes]
    etag_base: str
    last_modified: str
    created: float
    fragments: dict[str, bytes] = field(repr=False, default_factory=dict)
    _lazy: dict[str, bytes] = field(default_factory=dict, repr=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def etag(self, variant: str) -> str:
        return f'"{self.etag_base}-{variant}"'

    def bz2(self) -> bytes:
        return self._derived("bz2", lambda: bz2.compress(self.repodata, 9))

    def current_repodata(self) -> bytes:
        def build() -> bytes:
            records = {fn: orjson.loads(_record_part(fn, frag)) for fn, frag in self.fragments.items()}
            keep = rd.current_subset(records)
            frags = {fn: self.fragments[fn] for fn in keep}
            return rd.assemble_repodata(self.subdir, frags)
        return self._derived("current", build)

    def current_zst(self) -> bytes:
        return self._derived("current_zst", lambda: _zstd(self.current_repodata()))

    def _derived(self, key: str, build: Any) -> bytes:
        """Derived lazily from this publication's own bytes, so never stale beside repodata.json.

        One lock per file, so that a derived file may build from another derived file (the
        ``.zst`` of current_repodata.json builds current_repodata.json first) without waiting on
        itself; and a bounded wait, so that no request thread is held for ever by a slow build.
        """
        data = self._lazy.get(key)
        if data is not None:
            return data
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        if not lock.acquire(timeout=LAZY_BUILD_WAIT):
            raise ServiceUnavailable(f"{key} of {self.subdir} is still being prepared",
                                     "Retry in a few seconds", code="index_building", retry_after=5)
        try:
            if key not in self._lazy:
                self._lazy[key] = build()
            return self._lazy[key]
        finally:
            lock.release()


def _record_part(fn: str, frag: bytes) -> bytes:
    return frag[len(orjson.dumps(fn)) + 1:]


def _zstd(data: bytes) -> bytes:
    threads = 2 if len(data) > _MT_THRESHOLD else 0
    return zstandard.ZstdCompressor(level=3, threads=threads, write_content_size=True).compress(data)


class _SubdirState:
    def __init__(self, channel_id: str, subdir: str) -> None:
        self.channel_id = channel_id
        self.subdir = subdir
        self.fragments: dict[str, bytes] = {}
        self.name_of: dict[str, str] = {}
        self.by_name: dict[str, set[str]] = {}
        self.shard_digest: dict[str, bytes] = {}
        self.shards: dict[str, bytes] = {}
        self.seq = -1
        self.publication: Publication | None = None
        self.checked = 0.0
        self.dirty = True
        self.lock = threading.Lock()

    def apply(self, rows: dict[str, tuple[str, bytes] | None]) -> set[str]:
        """Apply {filename: (name, record_json) or None}; return the package names touched."""
        touched: set[str] = set()
        for fn, row in rows.items():
            old = self.name_of.pop(fn, None)
            if old is not None:
                self.fragments.pop(fn, None)
                self.by_name[old].discard(fn)
                touched.add(old)
            if row is not None:
                name, record = row
                self.fragments[fn] = rd.fragment(fn, record)
                self.name_of[fn] = name
                self.by_name.setdefault(name, set()).add(fn)
                touched.add(name)
        return touched

    def rebuild_shards(self, names: set[str]) -> None:
        for name in names:
            fns = self.by_name.get(name)
            if not fns:
                self.by_name.pop(name, None)
                self.shard_digest.pop(name, None)
                continue
            records = {fn: orjson.loads(_record_part(fn, self.fragments[fn])) for fn in fns}
            data = rd.encode_shard(records)
            digest = hashlib.sha256(data).digest()
            self.shard_digest[name] = digest
            self.shards[digest.hex()] = data

    def publish(self) -> Publication:
        repodata = rd.assemble_repodata(self.subdir, self.fragments)
        now = datetime.now(UTC)
        shard_index = rd.encode_shard_index(self.subdir, self.shard_digest,
                                            now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        live = {d.hex() for d in self.shard_digest.values()}
        previous = self.publication.shards if self.publication else {}
        # Keep the previous generation's shards: a client may hold the previous shard index.
        shards = {h: self.shards[h] for h in live}
        shards.update({h: b for h, b in previous.items() if h not in shards})
        self.shards = {h: self.shards[h] for h in live}
        base = hashlib.sha256(f"{FORMAT_VERSION}:{self.channel_id}:{self.subdir}:{self.seq}:"
                              f"{len(self.fragments)}".encode()).hexdigest()[:24]
        pub = Publication(self.subdir, self.seq, repodata, _zstd(repodata), shard_index, shards, base,
                          format_datetime(now.replace(microsecond=0), usegmt=True), time.time(),
                          fragments=dict(self.fragments))
        self.publication = pub
        return pub


class Indexer:
    """Holds the published index of every (channel, subdir) that has been asked for."""

    def __init__(self, sessions: sessionmaker[Session], *, poll_interval: float = 1.0) -> None:
        self._sessions = sessions
        self._states: dict[tuple[str, str], _SubdirState] = {}
        self._guard = threading.Lock()
        self.poll_interval = poll_interval

    def notify(self, channel_id: str, subdirs: set[str] | list[str]) -> None:
        """Called after a commit in this process that changed files of these subdirs."""
        for subdir in subdirs:
            state = self._states.get((channel_id, subdir))
            if state is not None:
                state.dirty = True

    def invalidate(self, channel_id: str) -> None:
        """Make every loaded subdir of a channel replay its log on the next read (e.g. on unfreeze)."""
        for (cid, _), state in list(self._states.items()):
            if cid == channel_id:
                state.dirty = True

    def forget(self, channel_ids: list[str]) -> None:
        with self._guard:
            for key in [k for k in self._states if k[0] in channel_ids]:
                del self._states[key]

    def peek(self, channel_id: str, subdir: str, *, frozen: bool = False) -> Publication | None:
        """The current publication if it needs no refresh (cheap, no I/O); else None."""
        state = self._states.get((channel_id, subdir))
        if state is None or state.publication is None:
            return None
        if frozen or (not state.dirty and time.monotonic() - state.checked < self.poll_interval):
            return state.publication
        return None

    def publication(self, channel_id: str, subdir: str, *, frozen: bool = False) -> Publication:
        state = self._states.get((channel_id, subdir))
        if state is None:
            with self._guard:
                state = self._states.setdefault((channel_id, subdir), _SubdirState(channel_id, subdir))
        pub = state.publication
        if pub is not None and (frozen or (not state.dirty
                                           and time.monotonic() - state.checked < self.poll_interval)):
            return pub
        with state.lock:
            if state.publication is None:
                self._load(state)
            elif not frozen:
                self._refresh(state)
            assert state.publication is not None
            return state.publication

    def _load(self, state: _SubdirState) -> None:
        with self._sessions() as db:
            state.dirty = False
            state.checked = time.monotonic()
            state.seq = self._max_seq(db, state)
            rows = db.execute(select(File.filename, File.name, File.record)
                              .where(File.channel_id == state.channel_id, File.subdir == state.subdir,
                                     File.family == "conda"))
            names = state.apply({fn: (name, record.encode()) for fn, name, record in rows})
        state.rebuild_shards(names)
        state.publish()

    @staticmethod
    def _max_seq(db: Session, state: _SubdirState) -> int:
        return db.scalar(select(func.max(IndexChange.seq)).where(
            IndexChange.channel_id == state.channel_id, IndexChange.subdir == state.subdir)) or 0

    def _refresh(self, state: _SubdirState) -> None:
        with self._sessions() as db:
            state.dirty = False
            state.checked = time.monotonic()
            changes = db.execute(select(IndexChange.seq, IndexChange.filename).where(
                IndexChange.channel_id == state.channel_id, IndexChange.subdir == state.subdir,
                IndexChange.seq > state.seq).order_by(IndexChange.seq)).all()
            if not changes:
                return
            fns = {fn for _, fn in changes}
            rows: dict[str, tuple[str, bytes] | None] = dict.fromkeys(fns)
            for chunk in _chunks(sorted(fns), 500):
                for fn, name, record in db.execute(
                        select(File.filename, File.name, File.record).where(
                            File.channel_id == state.channel_id, File.subdir == state.subdir,
                            File.family == "conda", File.filename.in_(chunk))):
                    rows[fn] = (name, record.encode())
            state.seq = changes[-1][0]
        state.rebuild_shards(state.apply(rows))
        state.publish()


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def log_changes(db: Session, channel_id: str, changes: list[tuple[str, str]]) -> None:
    """Record (subdir, filename) changes of a channel; call inside the writer's transaction.

    The channel row is locked first, so that writers of one channel commit in the order of their
    log sequence numbers (on PostgreSQL; SQLite serializes writers anyway). Readers rely on that:
    once they have seen seq N of a channel, no smaller seq can appear later.
    """
    if not changes:
        return
    lock_channel(db, channel_id)
    db.add_all(IndexChange(channel_id=channel_id, subdir=s, filename=f) for s, f in changes)


def lock_channel(db: Session, channel_id: str) -> None:
    """Serialize writers of one channel until commit. FOR NO KEY UPDATE, so that it does not
    conflict with the key-share locks that inserting rows referencing the channel takes."""
    db.execute(select(Channel.id).where(Channel.id == channel_id).with_for_update(key_share=True))
