"""Incremental indexing of every family: per (channel, partition), replay the IndexChange log into
published bytes.

Writers (uploads, bulk actions, mirror syncs) insert ``IndexChange`` rows in the same transaction
as the file rows. Readers ask the ``Indexer`` for the current ``Publication`` of a partition (a conda
subdir, a channel's Python ``simple`` index, an R ``src/contrib`` tree, ...); it applies whatever
changes are new since the last look (all of them at once, so bursts are coalesced) to the family's
``PartitionIndex``, which rebuilds only what the changes touched, and swaps in a new immutable
``Publication``. Every file of one publication, derived ones included, comes from the same bytes.
Other processes' writes are noticed by polling the log at most once per ``poll_interval``.

Publications are shared by every process and node: a build writes each file once to the blob store
(content-addressed by sha256) and points the partition's ``IndexPublication`` row at them. A process
that finds a pointer as new as the log adopts it instead of building: it keeps only the manifest in
memory and reads files from the blob store when asked (small ones are then cached with the
publication). Lazily derived files of an adopted publication are made from a local build of the
same log position, on first request, once per publication.

This is the one mechanism by which every family publishes an index and every serving route reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import zstandard
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.models import Channel, File, IndexChange, IndexPublication, utcnow
from taipan.domain import families
from taipan.domain.families import IndexFiles, PartitionIndex
from taipan.errors import ServiceUnavailable
from taipan.storage.base import BlobStore

log = logging.getLogger(__name__)

FORMAT_VERSION = "2"
# Media types worth compressing on the fly for clients that accept it (once per publication).
COMPRESSIBLE = ("application/json", "text/", "application/vnd.pypi.simple")
GZIP_LEVEL = 6
# How long a request waits for another request's build of the same lazily derived file.
LAZY_BUILD_WAIT = 30.0
# Files of an adopted publication up to this size stay in memory once read; larger ones are read from
# the blob store on each request (derived encodings of them are cached, and are small).
CACHE_FILE_LIMIT = 1 << 20


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
    # name -> (sha256, size) of every file stored in the blob store (empty when not shared).
    manifest: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Names derived on demand whose builders this process does not hold (an adopted publication).
    lazy_names: frozenset[str] = frozenset()
    adopted: bool = False
    _blobs: BlobStore | None = field(default=None, repr=False)
    _materialize: Callable[[], Publication] | None = field(default=None, repr=False)
    _local: Publication | None = field(default=None, repr=False)
    _lazy: dict[str, bytes] = field(default_factory=dict, repr=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def has(self, name: str) -> bool:
        return (name in self.index.files or name in self.index.lazy or name in self.manifest
                or name in self.lazy_names)

    def is_prepared(self, name: str) -> bool:
        """True when the file's bytes are in memory already (no build or read on first request)."""
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

    def blob(self, name: str, coding: str | None) -> str | None:
        """The digest of the one stored blob that holds ``name`` exactly as sent in ``coding``
        (identity, or zstd from ``<name>.zst``); None for a file made on demand or not stored whole
        (what a front server may then not send itself)."""
        key = {None: name, "zstd": name + ".zst"}.get(coding)
        stored = self.manifest.get(key) if key is not None else None
        return stored[0] if stored is not None else None

    def file(self, name: str) -> bytes:
        """The bytes of one file; derived files are built on first use, once per publication.

        One lock per file, so that a derived file may build from another derived file without
        waiting on itself; and a bounded wait, so that no request thread is held for ever.
        """
        data = self.index.files.get(name)
        if data is not None:
            return data
        stored = self.manifest.get(name)
        if stored is not None and self._blobs is not None:
            cached = self._lazy.get(name)
            if cached is not None:
                return cached
            if stored[1] <= CACHE_FILE_LIMIT:
                return self._derive(name, lambda pub: pub._read(name))
            return self._read(name)
        build = self.index.lazy.get(name)
        if build is None and name in self.lazy_names and self._materialize is not None:
            materialize = self._materialize
            build = lambda pub: materialize().file(name)  # noqa: E731
        if build is None:
            raise KeyError(name)
        return self._derive(name, build)

    def _read(self, name: str) -> bytes:
        assert self._blobs is not None
        sha, size = self.manifest[name]
        with self._blobs.open(sha) as f:
            data = f.read()
        if len(data) != size:
            raise ServiceUnavailable(f"{name} of {self.subdir} is being replaced", "Retry in a few seconds",
                                     code="index_building", retry_after=1)
        return data

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
        # The log position the in-memory PartitionIndex reflects; -1: it is empty (nothing loaded,
        # or dropped when another process's publication was adopted).
        self.index_seq = -1
        self.publication: Publication | None = None
        self.checked = 0.0
        self.dirty = True
        self.lock = threading.Lock()

    def apply(self, rows: dict[str, tuple[str, bytes] | None]) -> None:
        self.index.apply(rows)

    def publish(self) -> Publication:
        previous = self.publication
        files = self.index.build(previous.index if previous is not None and not previous.adopted else None)
        now = datetime.now(UTC)
        # The log sequence number names the state; the sizes guard against a pruned log handing out
        # the same number again for other contents after a restart.
        sizes = ",".join(str(len(v)) for _, v in sorted(files.files.items()) if not _.startswith("shards/"))
        base = hashlib.sha256(f"{FORMAT_VERSION}:{self.channel_id}:{self.family}:{self.subdir}:{self.seq}:"
                              f"{sizes}".encode()).hexdigest()[:24]
        pub = Publication(self.family, self.subdir, self.seq, files, base,
                          format_datetime(now.replace(microsecond=0), usegmt=True), time.time())
        if previous is not None and previous.adopted:
            # Content-addressed files (own ETags) of the previous publication stay for one more
            # generation, as a local build keeps them: a client may hold the previous index of them.
            for name, stored in previous.manifest.items():
                if name in previous.index.etags and name not in files.files:
                    pub.manifest[name] = stored
                    files.etags[name] = previous.index.etags[name]
                    files.media_types.setdefault(name, previous.media_type(name))
        self.publication = pub
        return pub


class Indexer:
    """Holds the published index of every (channel, subdir) that has been asked for.

    With a blob store, publications are shared: see the module docstring."""

    def __init__(self, sessions: sessionmaker[Session], *, blobs: BlobStore | None = None,
                 poll_interval: float = 1.0,
                 on_publish: list[Callable[[str, float, int], None]] | None = None) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._on_publish = on_publish if on_publish is not None else []
        self._states: dict[tuple[str, str], _PartitionState] = {}
        self._guard = threading.Lock()
        self.poll_interval = poll_interval
        self.documents = ChannelDocuments(sessions, poll_interval)
        self.builds = 0  # publications built by this process (adopted ones are not counted)
        self.adoptions = 0

    def notify(self, channel_id: str, subdirs: set[str] | list[str]) -> None:
        """Called after a commit in this process that changed files of these subdirs."""
        self.documents.touch(channel_id)
        for subdir in subdirs:
            state = self._states.get((channel_id, subdir))
            if state is not None:
                state.dirty = True

    def invalidate(self, channel_id: str) -> None:
        """Make every loaded subdir of a channel replay its log on the next read (e.g. on unfreeze)."""
        self.documents.touch(channel_id)
        for (cid, _), state in list(self._states.items()):
            if cid == channel_id:
                state.dirty = True

    def forget(self, channel_ids: list[str]) -> None:
        self.documents.forget(channel_ids)
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
        state = self._state(channel_id, subdir, family)
        pub = state.publication
        if pub is not None and (frozen or (not state.dirty
                                           and time.monotonic() - state.checked < self.poll_interval)):
            return pub
        with state.lock:
            if state.publication is None:
                self._load(state, frozen=frozen)
            elif not frozen:
                self._refresh(state)
            assert state.publication is not None
            return state.publication

    def _state(self, channel_id: str, subdir: str, family: str) -> _PartitionState:
        state = self._states.get((channel_id, subdir))
        if state is None:
            index = families.get(family).partition_index(subdir)
            if index is None:
                raise ValueError(f"the {family} family publishes no index")
            with self._guard:
                state = self._states.setdefault((channel_id, subdir),
                                                _PartitionState(channel_id, family, subdir, index))
        return state

    def _pointer(self, db: Session, state: _PartitionState) -> IndexPublication | None:
        if self._blobs is None:
            return None
        row = db.get(IndexPublication, (state.channel_id, state.subdir))
        if row is None or row.family != state.family or row.manifest.get("format") != FORMAT_VERSION:
            return None
        # A pointer whose main files are gone (e.g. a database restored without its blobs) is
        # rebuilt rather than adopted; content-addressed files (shards) are not checked one by one.
        etags = row.manifest.get("etags", {})
        if not all(self._blobs.exists(v[0]) for k, v in row.manifest.get("files", {}).items() if k not in etags):
            return None
        return row

    def _load(self, state: _PartitionState, *, frozen: bool = False) -> None:
        with self._sessions() as db:
            state.dirty = False
            state.checked = time.monotonic()
            max_seq = self._max_seq(db, state)
            row = self._pointer(db, state)
            if row is not None and (frozen or row.seq >= max_seq):
                self._adopt(state, row)
                return
        self._build_all(state)

    def _build_all(self, state: _PartitionState) -> None:
        """Load the whole partition into a fresh PartitionIndex and publish it."""
        index = families.get(state.family).partition_index(state.subdir)
        assert index is not None
        state.index = index
        with self._sessions() as db:
            state.seq = self._max_seq(db, state)
            rows = db.execute(select(File.filename, File.name, File.record)
                              .where(File.channel_id == state.channel_id, File.subdir == state.subdir,
                                     File.family == state.family, File.withheld.is_(False)))
            state.apply({fn: (name, record.encode()) for fn, name, record in rows})
        state.index_seq = state.seq
        self._publish(state)

    def _adopt(self, state: _PartitionState, row: IndexPublication) -> None:
        """Serve another process's publication: only its manifest is held in memory."""
        m = row.manifest
        files = IndexFiles(files={}, media_types=dict(m.get("media_types", {})), etags=dict(m.get("etags", {})))
        pub = Publication(state.family, state.subdir, row.seq, files, row.etag_base, row.last_modified,
                          time.time(), manifest={k: (v[0], int(v[1])) for k, v in m.get("files", {}).items()},
                          lazy_names=frozenset(m.get("lazy", ())), adopted=True, _blobs=self._blobs)
        pub._materialize = lambda: self._materialized(state, pub)
        state.publication = pub
        state.seq = row.seq
        # The local incremental index is older than what is served now: drop it (memory), and load
        # it anew when this process has to build.
        if state.index_seq >= 0:
            fresh = families.get(state.family).partition_index(state.subdir)
            assert fresh is not None
            state.index = fresh
            state.index_seq = -1
        self.adoptions += 1
        log.info("adopted the publication of %s/%s at %d", state.channel_id, state.subdir, row.seq)

    def _materialized(self, state: _PartitionState, adopted: Publication) -> Publication:
        """A private local build of the partition, made once per adopted publication, from which its
        lazily derived files are made (the adopted files themselves are still served as stored)."""
        with adopted._guard:
            lock = adopted._locks.setdefault("|local", threading.Lock())
        with lock:
            if adopted._local is None:
                index = families.get(state.family).partition_index(state.subdir)
                assert index is not None
                with self._sessions() as db:
                    rows = db.execute(select(File.filename, File.name, File.record).where(
                        File.channel_id == state.channel_id, File.subdir == state.subdir,
                        File.family == state.family, File.withheld.is_(False)))
                    index.apply({fn: (name, record.encode()) for fn, name, record in rows})
                adopted._local = Publication(state.family, state.subdir, adopted.seq, index.build(None),
                                             adopted.etag_base, adopted.last_modified, time.time())
                log.info("built the derived files of %s/%s at %d", state.channel_id, state.subdir, adopted.seq)
            return adopted._local

    @staticmethod
    def _max_seq(db: Session, state: _PartitionState) -> int:
        return db.scalar(select(func.max(IndexChange.seq)).where(
            IndexChange.channel_id == state.channel_id, IndexChange.subdir == state.subdir)) or 0

    def _refresh(self, state: _PartitionState) -> None:
        with self._sessions() as db:
            state.dirty = False
            state.checked = time.monotonic()
            max_seq = self._max_seq(db, state)
            if max_seq <= state.seq:
                return
            pointer_seq = db.scalar(select(IndexPublication.seq).where(
                IndexPublication.channel_id == state.channel_id,
                IndexPublication.subdir == state.subdir)) if self._blobs is not None else None
            if pointer_seq is not None and pointer_seq >= max_seq:
                row = self._pointer(db, state)
                if row is not None:
                    self._adopt(state, row)
                    return
            if state.index_seq < 0:
                pass  # built below, outside this session
            else:
                changes = db.execute(select(IndexChange.seq, IndexChange.filename).where(
                    IndexChange.channel_id == state.channel_id, IndexChange.subdir == state.subdir,
                    IndexChange.seq > state.index_seq).order_by(IndexChange.seq)).all()
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
                state.seq = state.index_seq = changes[-1][0]
        if state.index_seq < 0:
            self._build_all(state)
            return
        state.apply(rows)
        self._publish(state)

    def _publish(self, state: _PartitionState) -> None:
        started = time.perf_counter()
        previous = state.publication
        pub = state.publish()
        if self._blobs is not None:
            pub._blobs = self._blobs
            try:
                self._share(state, pub, previous)
            except Exception:  # the local publication still serves this process
                log.exception("could not share the publication of %s/%s", state.channel_id, state.subdir)
        elapsed = time.perf_counter() - started
        self.builds += 1
        size = sum(len(v) for v in pub.index.files.values())
        log.info("built the publication of %s/%s at %d in %.3f s", state.channel_id, state.subdir, pub.seq,
                 elapsed)
        for hook in self._on_publish:
            try:
                hook(state.family, elapsed, size)
            except Exception:  # an observer never breaks publishing
                log.exception("publish hook failed")

    def _share(self, state: _PartitionState, pub: Publication, previous: Publication | None) -> None:
        """Write the publication's files to the blob store and point the partition at them."""
        assert self._blobs is not None
        before = previous.index.files if previous is not None else {}
        known = previous.manifest if previous is not None else {}
        for name, data in pub.index.files.items():
            if before.get(name) is data and name in known:
                pub.manifest[name] = known[name]  # the very same bytes as the previous publication's
                continue
            sha = hashlib.sha256(data).hexdigest()
            if known.get(name, ("",))[0] != sha:  # else stored already, and named by the current pointer
                put_bytes(self._blobs, sha, data)
            pub.manifest[name] = (sha, len(data))
        manifest = {"format": FORMAT_VERSION,
                    "files": {k: [v[0], v[1]] for k, v in pub.manifest.items()},
                    "media_types": {k: v for k, v in pub.index.media_types.items() if pub.has(k)},
                    "etags": dict(pub.index.etags), "lazy": sorted(pub.index.lazy)}
        values = {"family": state.family, "seq": pub.seq, "etag_base": pub.etag_base,
                  "last_modified": pub.last_modified, "manifest": manifest, "updated_at": utcnow()}
        for _ in range(2):
            with self._sessions() as db:
                row = db.get(IndexPublication, (state.channel_id, state.subdir), with_for_update=True)
                if row is None:
                    db.add(IndexPublication(channel_id=state.channel_id, subdir=state.subdir, **values))
                elif row.seq <= pub.seq:
                    for k, v in values.items():
                        setattr(row, k, v)
                else:
                    return  # another process published a newer state meanwhile
                try:
                    db.commit()
                    return
                except IntegrityError:  # another process inserted the pointer first
                    db.rollback()


def put_bytes(blobs: BlobStore, sha256: str, data: bytes) -> None:
    """Store ``data`` (whose digest is ``sha256``) in the blob store, unless it is there already
    (then it is touched, so that a cleanup in progress keeps it)."""
    if blobs.touch(sha256):
        return
    fd, tmp = tempfile.mkstemp(dir=blobs.tempdir(), prefix="index-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        blobs.put_file(sha256, Path(tmp), move=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


class ChannelDocuments:
    """Channel-wide index documents (conda's ``channeldata.json``) as publications: built once per
    change of the channel's index log, not per request, and served like every index file (ETag,
    304, gzip and zstd content codings). The document's state is the highest log position of the
    partitions it summarises; it is checked at most once per poll interval unless this process
    wrote to the channel (``Indexer.notify``)."""

    def __init__(self, sessions: sessionmaker[Session], poll_interval: float) -> None:
        self._sessions = sessions
        self.poll_interval = poll_interval
        self._items: dict[tuple[str, str], tuple[float, int, Publication]] = {}
        self._dirty: set[str] = set()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def touch(self, channel_id: str) -> None:
        self._dirty.add(channel_id)

    def forget(self, channel_ids: list[str]) -> None:
        with self._guard:
            for key in [k for k in self._items if k[0] in channel_ids]:
                del self._items[key]

    def peek(self, channel_id: str, name: str) -> Publication | None:
        hit = self._items.get((channel_id, name))
        if hit is None or channel_id in self._dirty or time.monotonic() - hit[0] >= self.poll_interval:
            return None
        return hit[2]

    def publication(self, channel_id: str, name: str, partitions: frozenset[str], media_type: str,
                    build: Callable[[], bytes]) -> Publication:
        """The current publication of document ``name``, summarising ``partitions`` of the channel;
        ``build`` makes its bytes (in this thread, once per change)."""
        pub = self.peek(channel_id, name)
        if pub is not None:
            return pub
        key = (channel_id, name)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            self._dirty.discard(channel_id)
            with self._sessions() as db:
                # One index seek per partition: max(seq) over the whole channel would scan its log.
                seq = max((db.scalar(select(func.max(IndexChange.seq)).where(
                    IndexChange.channel_id == channel_id, IndexChange.subdir == p)) or 0 for p in sorted(partitions)),
                    default=0)
            hit = self._items.get(key)
            if hit is not None and hit[1] == seq:
                pub = hit[2]
            else:
                data = build()
                zst = zstandard.ZstdCompressor(level=3).compress(data)
                files = IndexFiles(files={name: data, name + ".zst": zst},
                                   media_types={name: media_type, name + ".zst": "application/zstd"})
                now = datetime.now(UTC).replace(microsecond=0)
                pub = Publication("channel", name, seq, files, hashlib.sha256(data).hexdigest()[:24],
                                  format_datetime(now, usegmt=True), time.time())
            self._items[key] = (time.monotonic(), seq, pub)
            return pub
