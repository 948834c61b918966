"""Incremental indexing of every family: per (channel, partition), replay the IndexChange log into
published bytes.

Writers (uploads, bulk actions, mirror syncs) insert ``IndexChange`` rows in the same transaction
as the file rows. Readers ask the ``Indexer`` for the current ``Publication`` of a partition (a conda
subdir, a channel's Python ``simple`` index, an R ``src/contrib`` tree, ...); it applies whatever
changes are new since the last look (all of them at once, so bursts are coalesced) to the family's
``PartitionIndex``, which rebuilds only what the changes touched, and swaps in a new immutable
``Publication``. Every file of one publication, derived ones included, comes from the same bytes.
Other processes' writes are noticed by polling the log at most once per ``poll_interval``.

This is the one mechanism by which every family publishes an index and every serving route reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.models import Channel, File, IndexChange
from taipan.domain import families
from taipan.domain.families import IndexFiles, PartitionIndex
from taipan.errors import ServiceUnavailable

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"
# Media types worth compressing on the fly for clients that accept it (once per publication).
COMPRESSIBLE = ("application/json", "text/", "application/vnd.pypi.simple")
GZIP_LEVEL = 6
# How long a request waits for another request's build of the same lazily derived file.
LAZY_BUILD_WAIT = 30.0


@dataclass
class Publication:
    """One immutable, consistent set of a partition's index files."""

    family: str
    subdir: str
    seq: int
    index: IndexFiles
    etag_base: str
    last_modified: str
    created: float
    _lazy: dict[str, bytes] = field(default_factory=dict, repr=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def has(self, name: str) -> bool:
        return name in self.index.files or name in self.index.lazy

    def is_prepared(self, name: str) -> bool:
        """True when the file's bytes exist already (no build on first request)."""
        return name in self.index.files or name in self._lazy

    def etag(self, name: str) -> str:
        override = self.index.etags.get(name)
        if override is not None:
            return override
        return f'"{self.etag_base}-{name.replace(".", "-").replace("/", "-")}"'

    def media_type(self, name: str) -> str:
        return self.index.media_types.get(name, "application/octet-stream")

    def encodings(self, name: str) -> tuple[str, ...]:
        """The content codings this file is offered in besides identity, best first: zstd when the
        partition publishes ``<name>.zst`` (the same bytes, compressed), gzip for text-like files."""
        offered = []
        if self.has(name + ".zst"):
            offered.append("zstd")
        if self.media_type(name).startswith(COMPRESSIBLE):
            offered.append("gzip")
        return tuple(offered)

    def encoded(self, name: str, coding: str | None) -> bytes:
        """The bytes of ``name`` in a content coding (None: identity); gzip is made once per
        publication, on first request, deterministically (no timestamp in the header)."""
        if coding is None:
            return self.file(name)
        if coding == "zstd":
            return self.file(name + ".zst")
        return self._derive(f"{name}|gzip", lambda pub: gzip.compress(pub.file(name), GZIP_LEVEL, mtime=0))

    def etag_for(self, name: str, coding: str | None) -> str:
        etag = self.etag(name)
        return etag if coding is None else f'{etag[:-1]}-{coding}"'

    def is_ready(self, name: str, coding: str | None) -> bool:
        key = name if coding is None else (name + ".zst" if coding == "zstd" else f"{name}|gzip")
        return self.is_prepared(key)

    def file(self, name: str) -> bytes:
        """The bytes of one file; derived files are built on first use, once per publication.

        One lock per file, so that a derived file may build from another derived file without
        waiting on itself; and a bounded wait, so that no request thread is held for ever.
        """
        data = self.index.files.get(name)
        if data is not None:
            return data
        return self._derive(name, self.index.lazy[name])

    def _derive(self, name: str, build: Callable[[Publication], bytes]) -> bytes:
        data = self._lazy.get(name)
        if data is not None:
            return data
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        if not lock.acquire(timeout=LAZY_BUILD_WAIT):
            raise ServiceUnavailable(f"{name} of {self.subdir} is still being prepared",
                                     "Retry in a few seconds", code="index_building", retry_after=5)
        try:
            if name not in self._lazy:
                self._lazy[name] = build(self)
            return self._lazy[name]
        finally:
            lock.release()


class _PartitionState:
    def __init__(self, channel_id: str, family: str, subdir: str, index: PartitionIndex) -> None:
        self.channel_id = channel_id
        self.family = family
        self.subdir = subdir
        self.index = index
        self.seq = -1
        self.publication: Publication | None = None
        self.checked = 0.0
        self.dirty = True
        self.lock = threading.Lock()

    def apply(self, rows: dict[str, tuple[str, bytes] | None]) -> None:
        self.index.apply(rows)

    def publish(self) -> Publication:
        files = self.index.build(self.publication.index if self.publication else None)
        now = datetime.now(UTC)
        # The log sequence number names the state; the sizes guard against a pruned log handing out
        # the same number again for other contents after a restart.
        sizes = ",".join(str(len(v)) for _, v in sorted(files.files.items()) if not _.startswith("shards/"))
        base = hashlib.sha256(f"{FORMAT_VERSION}:{self.channel_id}:{self.family}:{self.subdir}:{self.seq}:"
                              f"{sizes}".encode()).hexdigest()[:24]
        pub = Publication(self.family, self.subdir, self.seq, files, base,
                          format_datetime(now.replace(microsecond=0), usegmt=True), time.time())
        self.publication = pub
        return pub


class Indexer:
    """Holds the published index of every (channel, subdir) that has been asked for."""

    def __init__(self, sessions: sessionmaker[Session], *, poll_interval: float = 1.0,
                 on_publish: list[Callable[[str, float, int], None]] | None = None) -> None:
        self._sessions = sessions
        self._on_publish = on_publish if on_publish is not None else []
        self._states: dict[tuple[str, str], _PartitionState] = {}
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

    def publication(self, channel_id: str, subdir: str, *, family: str = "conda",
                    frozen: bool = False) -> Publication:
        """The current publication of a partition (partition names never collide across families)."""
        state = self._states.get((channel_id, subdir))
        if state is None:
            index = families.get(family).partition_index(subdir)
            if index is None:
                raise ValueError(f"the {family} family publishes no index")
            with self._guard:
                state = self._states.setdefault((channel_id, subdir),
                                                _PartitionState(channel_id, family, subdir, index))
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

    def _load(self, state: _PartitionState) -> None:
        with self._sessions() as db:
            state.dirty = False
            state.checked = time.monotonic()
            state.seq = self._max_seq(db, state)
            rows = db.execute(select(File.filename, File.name, File.record)
                              .where(File.channel_id == state.channel_id, File.subdir == state.subdir,
                                     File.family == state.family, File.withheld.is_(False)))
            state.apply({fn: (name, record.encode()) for fn, name, record in rows})
        self._publish(state)

    @staticmethod
    def _max_seq(db: Session, state: _PartitionState) -> int:
        return db.scalar(select(func.max(IndexChange.seq)).where(
            IndexChange.channel_id == state.channel_id, IndexChange.subdir == state.subdir)) or 0

    def _refresh(self, state: _PartitionState) -> None:
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
                            File.family == state.family, File.filename.in_(chunk),
                            File.withheld.is_(False))):
                    rows[fn] = (name, record.encode())
            state.seq = changes[-1][0]
        state.apply(rows)
        self._publish(state)

    def _publish(self, state: _PartitionState) -> None:
        started = time.perf_counter()
        pub = state.publish()
        elapsed = time.perf_counter() - started
        size = sum(len(v) for v in pub.index.files.values())
        for hook in self._on_publish:
            try:
                hook(state.family, elapsed, size)
            except Exception:  # an observer never breaks publishing
                log.exception("publish hook failed")


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
