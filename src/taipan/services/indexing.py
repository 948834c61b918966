"""Incremental indexing of every family: per (channel, partition), replay the IndexChange log into
published bytes.

Writers (uploads, bulk actions, mirror syncs) insert ``IndexChange`` rows in the same transaction
as the file rows. Readers ask the ``Indexer`` for the current ``Publication`` of a partition (a conda
subdir, a channel's Python ``simple`` index, an R ``src/contrib`` tree, ...); it applies whatever
changes are new since the last look (all of them at once, so bursts are coalesced) to the family's
``PartitionIndex``, which rebuilds only what the changes touched, and swaps in a new immutable
``Publication``. Every file of one publication, derived ones included, comes from the same bytes.
Other processes' writes are noticed at once when they share this machine and home (they ring the
channel's change bell after their commit: ``storage/bell.py``, ``ring_on_commit``), else by polling
the log at most once per ``poll_interval``.

Publications are shared by every process and node: a build writes each file once to the blob store
(content-addressed by sha256; a segmented file's changed parts are written while the index builds)
and points the partition's ``IndexPublication`` row at them. A process that finds a pointer as new
as the log adopts it instead of building: it keeps only the manifest in memory and reads files from
the blob store when asked (small ones are then cached with the publication). Lazily derived files of
an adopted publication are compressed from its stored files (``Compressed``) or made from a local
build of the same log position, on first request, once per publication.

This is the one mechanism by which every family publishes an index and every serving route reads it.

A frozen channel's index is refreshed like any other, but what is written to the channel while it is
frozen (uploads, mirror runs) is held apart (``HeldChange``) instead of logged, and logged when it is
unfrozen (``release_held``). Files withheld by the channel's CVE filters, restored, or removed are
logged at once (``log_changes(..., even_if_frozen=True)``), so a frozen channel keeps the files it
had at the freeze, less those it may not offer now; a held file is never published by them.
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import zstandard
from sqlalchemy import and_, delete, event, exists, func, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.models import Channel, File, HeldChange, IndexChange, IndexPublication, utcnow
from taipan.domain import families
from taipan.domain.families import IndexFiles, PartitionIndex
from taipan.domain.families.base import Chunk, Compressed, Segmented
from taipan.services.publication import (
    ADDRESSED_CACHE,
    MEMORY_LIMIT,
    BlobSink,
    Publication,
    body_size,
    put_bytes,
    read_blob,
)
from taipan.storage.base import BlobStore
from taipan.storage.bell import Bell, silent_bell

log = logging.getLogger(__name__)

FORMAT_VERSION = "4"
# Rows read per batch when a partition is loaded from the database.
LOAD_BATCH = 5000
# A publication whose segmented files are larger than this (bytes), or whose build left more than
# this many addressed files to write, is shared in a background thread.
BACKGROUND_ABOVE = 8 << 20
BACKGROUND_PENDING = 100


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
        self.used = float("-inf")  # when its publication was last asked for (time.monotonic())
        self.dirty = True
        self.notified = 0  # moved by every notify/invalidate: a background look keeps dirty while it runs
        self.slot = Bell.slot(channel_id)
        # The channel's bell slot as read before the last completed look at the log: the
        # publication is not current once the slot holds another value (another process rang).
        self.rung = -1
        self.lock = threading.Lock()

    def publish(self, blobs: BlobStore, memory_limit: int) -> Publication:
        previous = self.publication
        sink = BlobSink(blobs)
        files = self.index.build(sink)
        now = datetime.now(UTC)
        # The log sequence number names the state; the sizes guard against a pruned log handing out
        # the same number again for other contents after a restart.
        sizes = ",".join(str(body_size(v)) for _, v in sorted(files.files.items()) if not isinstance(v, Compressed))
        base = hashlib.sha256(f"{FORMAT_VERSION}:{self.channel_id}:{self.family}:{self.subdir}:{self.seq}:"
                              f"{sizes}".encode()).hexdigest()[:24]
        manifest = {name: (hashlib.sha256(v).hexdigest(), len(v)) for name, v in files.files.items()
                    if isinstance(v, bytes)}
        pub = Publication(self.family, self.subdir, self.seq, files, base,
                          format_datetime(now.replace(microsecond=0), usegmt=True), time.time(), blobs,
                          manifest=manifest, addressed=self.index.addressed, pending=sink.deferred,
                          memory_limit=memory_limit, index_snapshot=self.index.snapshot())
        addressed = self.index.addressed
        if addressed is not None:
            listing = files.files[addressed.listing]
            assert isinstance(listing, bytes)
            pub.addressed_digests = addressed.digests(listing)
            if previous is not None:
                # Addressed files of the previous publication stay for one more generation: a
                # client may hold the previous listing.
                pub.previous_digests = previous.addressed_digests
                pub.previous_listing = previous.manifest.get(addressed.listing)
        self.publication = pub
        return pub


class Indexer:
    """Holds the published index of every (channel, subdir) that has been asked for.

    Publications are shared through the blob store: see the module docstring."""

    def __init__(self, sessions: sessionmaker[Session], *, blobs: BlobStore,
                 poll_interval: float = 1.0, background_above: int = BACKGROUND_ABOVE,
                 memory_limit: int = MEMORY_LIMIT,
                 on_publish: list[Callable[[str, float, int], None]] | None = None,
                 bell: Bell | None = None) -> None:
        self._sessions = sessions
        # Rung by every process of this machine that commits changes (``ring_on_commit``); without
        # it, only polling tells this process of others' changes.
        self.bell = bell if bell is not None else silent_bell()
        self._rung = self.bell.values
        self._blobs = blobs
        self._on_publish = on_publish if on_publish is not None else []
        self._states: dict[tuple[str, str], _PartitionState] = {}
        self._guard = threading.Lock()
        self.poll_interval = poll_interval
        self.background_above = background_above
        self.memory_limit = memory_limit
        self.documents = ChannelDocuments(sessions, poll_interval, self.bell)
        self.builds = 0  # publications built by this process (adopted ones are not counted)
        # How this process came to hold partitions' indexes: adopted another's publication, loaded
        # every row of the partition, resumed the incremental index from a publication's snapshot.
        self.adoptions = 0
        self.full_loads = 0
        self.resumes = 0

    def notify(self, channel_id: str, subdirs: set[str] | list[str]) -> None:
        """Called after a commit in this process that changed files of these subdirs."""
        self.documents.touch(channel_id)
        for subdir in subdirs:
            state = self._states.get((channel_id, subdir))
            if state is not None:
                state.notified += 1
                state.dirty = True

    def invalidate(self, channel_id: str) -> None:
        """Make every loaded subdir of a channel replay its log on the next read (e.g. on unfreeze)."""
        self.documents.touch(channel_id)
        for (cid, _), state in list(self._states.items()):
            if cid == channel_id:
                state.notified += 1
                state.dirty = True

    def forget(self, channel_ids: list[str]) -> None:
        self.documents.forget(channel_ids)
        with self._guard:
            for key in [k for k in self._states if k[0] in channel_ids]:
                del self._states[key]

    def _current(self, state: _PartitionState, now: float) -> bool:
        """May the state's publication be served without a look at the log? Not when this process
        changed the partition, nor when another process on this machine rang the channel's bell, nor
        once the poll interval has passed (for processes on other machines). (A frozen channel's
        too: its log holds only the changes its index publishes; see the module docstring.)"""
        return not state.dirty and now - state.checked < self.poll_interval and self._rung[state.slot] == state.rung

    def peek(self, channel_id: str, subdir: str) -> Publication | None:
        """The current publication if it needs no refresh (cheap, no I/O); else None."""
        state = self._states.get((channel_id, subdir))
        if state is None or state.publication is None:
            return None
        now = state.used = time.monotonic()
        return state.publication if self._current(state, now) else None

    def current(self, channel_id: str, subdir: str) -> Publication | None:
        """``peek`` for a background task: the publication if current, without counting as a use."""
        state = self._states.get((channel_id, subdir))
        return state.publication if state is not None and self._current(state, time.monotonic()) else None

    def keep_fresh(self, used_since: float, age: float, channel_ids: set[str]) -> None:
        """Look at the log ahead of need (``_refresh``, as a request would) for the publications of
        ``channel_ids`` asked for since ``used_since`` whose last look is ``age`` seconds old (less
        than poll_interval), so that requests keep finding them current; a change made in this
        process is published here. One a request is refreshing is left to it. Called by the
        serving process's refresher (web.keep_fresh), which names the channels that are served."""
        for state in list(self._states.values()):
            if (state.used < used_since or state.channel_id not in channel_ids or state.publication is None
                    or not state.dirty and time.monotonic() - state.checked < age
                    and self._rung[state.slot] == state.rung):
                continue
            if not state.lock.acquire(blocking=False):
                continue
            try:
                # A change made here is published here. Another process's is adopted once that
                # process has published it, not built a second time meanwhile (a request still
                # builds it if it comes first, as it would without this).
                self._refresh(state, build=state.dirty, background=True)
            finally:
                state.lock.release()

    def publication(self, channel_id: str, subdir: str, *, family: str = "conda") -> Publication:
        """The current publication of a partition (partition names never collide across families)."""
        state = self._state(channel_id, subdir, family)
        now = state.used = time.monotonic()
        pub = state.publication
        if pub is not None and self._current(state, now):
            return pub
        with state.lock:
            if state.publication is None:
                self._load(state)
            elif self._current(state, time.monotonic()):
                pass  # a look that began after this request came made it current meanwhile
            else:
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
        row = db.get(IndexPublication, (state.channel_id, state.subdir))
        if row is None or row.family != state.family or row.manifest.get("format") != FORMAT_VERSION:
            return None
        # A pointer whose whole files are gone (e.g. a database restored without its blobs) is
        # rebuilt rather than adopted. Segmented files' parts (hundreds; .zst is made from them)
        # and addressed files (thousands) are not checked one by one.
        if not all(self._blobs.exists(v[0]) for v in row.manifest.get("files", {}).values()):
            return None
        return row

    def _load(self, state: _PartitionState) -> None:
        with self._sessions() as db:
            state.dirty = False
            state.checked = time.monotonic()
            state.rung = self._rung[state.slot]
            max_seq = self._max_seq(db, state)
            row = self._pointer(db, state)
            if row is not None:
                self._adopt(state, row)
                if row.seq >= max_seq:
                    return
        if row is not None:
            # Changes after the stored publication (e.g. uploads before a restart that nobody
            # asked for since): resume from it and apply them, as for any later change.
            self._refresh(state)
            return
        self._build_all(state)

    def _load_rows(self, state: _PartitionState, index: PartitionIndex) -> int:
        """Feed every file row of the partition that its index lists (not withheld, not held while
        the channel is frozen) to ``index``, in batches; the log position read."""
        with self._sessions() as db:
            seq = self._max_seq(db, state)
            # Through the connection: plain rows, without the ORM's per-row work (a third of a load).
            result = db.connection().execution_options(yield_per=LOAD_BATCH).execute(
                select(File.filename, File.name, File.record).where(
                    File.channel_id == state.channel_id, File.subdir == state.subdir,
                    File.family == state.family, File.withheld.is_(False),
                    File.filename.not_in(held_query(state.channel_id, state.subdir))))
            for rows in result.partitions():
                index.apply({fn: (name, record.encode()) for fn, name, record in rows})
        return seq

    def _build_all(self, state: _PartitionState) -> None:
        """Load the whole partition into a fresh PartitionIndex and publish it."""
        state.index = _fresh_index(state)
        state.seq = state.index_seq = self._load_rows(state, state.index)
        self.full_loads += 1
        self._publish(state)
        release_memory()

    def _adopt(self, state: _PartitionState, row: IndexPublication) -> None:
        """Serve another process's publication: only its manifest (and the digest lists of its
        addressed files) is held in memory."""
        m = row.manifest
        files = IndexFiles(files={name: Segmented(tuple(_part(p) for p in parts))
                                  for name, parts in m.get("segmented", {}).items()},
                           media_types=dict(m.get("media_types", {})), etags=dict(m.get("etags", {})),
                           lazy={name: Compressed(*spec) for name, spec in m.get("derive", {}).items()})
        pub = Publication(state.family, state.subdir, row.seq, files, row.etag_base, row.last_modified,
                          time.time(), self._blobs,
                          manifest={k: (v[0], int(v[1])) for k, v in m.get("files", {}).items()},
                          lazy_names=frozenset(m.get("lazy", ())), adopted=True, stored_all=True,
                          addressed=state.index.addressed,
                          memory_limit=self.memory_limit, index_snapshot=m.get("index_state"))
        if pub.addressed is not None:
            pub.addressed_digests = pub.addressed.digests(pub.file(pub.addressed.listing))
            previous = m.get("previous_listing")
            if previous and self._blobs.exists(previous[0]):
                pub.previous_listing = (previous[0], int(previous[1]))
                pub.previous_digests = pub.addressed.digests(read_blob(self._blobs, Chunk(*pub.previous_listing)))
        pub._materialize = lambda: self._materialized(state, pub)
        state.publication = pub
        state.seq = row.seq
        # The local incremental index is older than what is served now: drop it (memory), and load
        # it anew when this process has to build.
        if state.index_seq >= 0:
            state.index = _fresh_index(state)
            state.index_seq = -1
        self.adoptions += 1
        log.info("adopted the publication of %s/%s at %d", state.channel_id, state.subdir, row.seq)

    def _materialized(self, state: _PartitionState, adopted: Publication) -> Publication:
        """A private local build of the partition, made once per adopted publication, from which its
        lazily derived files that need the records are made (the adopted files themselves are
        still served as stored; ``Compressed`` ones are made from them)."""
        with adopted._guard:
            lock = adopted._locks.setdefault("|local", threading.Lock())
        with lock:
            if adopted._local is None:
                index = _fresh_index(state)
                self._load_rows(state, index)
                adopted._local = Publication(state.family, state.subdir, adopted.seq,
                                             index.build(BlobSink(self._blobs)), adopted.etag_base,
                                             adopted.last_modified, time.time(), self._blobs)
                log.info("built the derived files of %s/%s at %d", state.channel_id, state.subdir, adopted.seq)
            return adopted._local

    @staticmethod
    def _max_seq(db: Session, state: _PartitionState) -> int:
        return db.scalar(select(func.max(IndexChange.seq)).where(
            IndexChange.channel_id == state.channel_id, IndexChange.subdir == state.subdir)) or 0

    def _refresh(self, state: _PartitionState, *, build: bool = True, background: bool = False) -> None:
        """Serve what the log says now: nothing to do, another process's publication to adopt, or
        changes to apply and publish. Without ``build`` changes are left as they are, and the
        publication is marked stale, so that the next request refreshes it as usual (and never
        serves it once the log is known to have moved). A request's look makes the publication
        current at once (other requests meanwhile are answered from it, as they came first); a
        ``background`` look only once it is done, and a change made here (dirty) stays due while
        it runs, so that a request after it waits for the look (the state's lock) rather than be
        answered from the previous publication."""
        started = time.monotonic()
        notified = state.notified
        # Read before the look: a ring during it leaves the slot at another value, so the next
        # request looks again. Noted only once the look is done: a request after a ring waits for
        # the look (the lock) rather than be answered from the previous publication.
        rung = self._rung[state.slot]
        if not background:
            state.dirty = False
            state.checked = started
        stale = False
        try:
            stale = self._look(state, build)
        finally:
            state.checked = float("-inf") if stale else started
            if background and not stale and state.notified == notified:
                state.dirty = False
        state.rung = rung  # not after a failed look: the next request tries again

    def _look(self, state: _PartitionState, build: bool) -> bool:
        """``_refresh``'s work; True when a change was left to the next request."""
        with self._sessions() as db:
            max_seq = self._max_seq(db, state)
            if max_seq <= state.seq:
                return False
            pointer_seq = db.scalar(select(IndexPublication.seq).where(
                IndexPublication.channel_id == state.channel_id,
                IndexPublication.subdir == state.subdir))
            if pointer_seq is not None and pointer_seq >= max_seq:
                row = self._pointer(db, state)
                if row is not None:
                    self._adopt(state, row)
                    return False
            if not build:
                return True
            if state.index_seq < 0:
                self._resume(state)  # else built below, outside this session
            if state.index_seq >= 0:
                changes = db.execute(select(IndexChange.seq, IndexChange.filename).where(
                    IndexChange.channel_id == state.channel_id, IndexChange.subdir == state.subdir,
                    IndexChange.seq > state.index_seq).order_by(IndexChange.seq)).all()
                if not changes:
                    return
                fns = {fn for _, fn in changes}
                rows: dict[str, tuple[str, bytes] | None] = dict.fromkeys(fns)
                for chunk in _chunks(sorted(fns), 500):
                    for fn, name, record in db.execute(
                            changed_rows(state.channel_id, state.family, state.subdir, chunk)):
                        rows[fn] = (name, record.encode())
                    # A file held in a frozen channel (e.g. uploaded, withheld and restored since
                    # the freeze) is not published by a change logged meanwhile; its removal is.
                    for fn in db.scalars(held_query(state.channel_id, state.subdir).where(
                            HeldChange.filename.in_(chunk))):
                        if rows.get(fn) is not None:
                            del rows[fn]
                state.seq = state.index_seq = changes[-1][0]
        if state.index_seq < 0:
            self._build_all(state)
            return
        state.index.apply(rows)
        self._publish(state)

    def _resume(self, state: _PartitionState) -> None:
        """Make the incremental index that of the publication served now (adopted from another
        process, or after a restart) from its snapshot: a few hundred part digests and its shard
        listing, instead of loading and re-encoding the whole partition. Left empty (so that it is
        rebuilt) when the publication has no snapshot or its files do not match it."""
        pub = state.publication
        if pub is None or pub.index_snapshot is None or pub.seq != state.seq:
            return
        index = _fresh_index(state)
        try:
            index.resume(pub.index_snapshot, pub.index, pub.file)
        except Exception:  # a rebuild from the rows is always right
            log.warning("could not resume the index of %s/%s at %d; rebuilding it", state.channel_id,
                        state.subdir, pub.seq, exc_info=True)
            return
        state.index = index
        state.index_seq = pub.seq
        self.resumes += 1
        log.info("resumed the index of %s/%s at %d", state.channel_id, state.subdir, pub.seq)

    def _publish(self, state: _PartitionState) -> None:
        """Build and serve a new publication, and share it: in this thread, or for a large one in
        a background thread (this process serves it meanwhile: files made by compression are made
        on first request or by the sharing thread, whichever comes first; addressed files not
        stored yet from memory). Others adopt it once everything is stored and the pointer moved."""
        started = time.perf_counter()
        pub = state.publish(self._blobs, self.memory_limit)
        large = len(pub.pending) > BACKGROUND_PENDING or sum(
            body_size(v) for v in pub.index.files.values() if isinstance(v, Segmented)) > self.background_above
        if large:
            threading.Thread(target=self._share_logged, args=(state, pub), kwargs={"large": True}, daemon=True,
                             name=f"share-{state.subdir}").start()
        else:
            self._share_logged(state, pub)
        elapsed = time.perf_counter() - started
        self.builds += 1
        size = sum(body_size(v) for v in pub.index.files.values() if not isinstance(v, Compressed))
        log.info("built the publication of %s/%s at %d in %.3f s", state.channel_id, state.subdir, pub.seq,
                 elapsed)
        for hook in self._on_publish:
            try:
                hook(state.family, elapsed, size)
            except Exception:  # an observer never breaks publishing
                log.exception("publish hook failed")

    def _share_logged(self, state: _PartitionState, pub: Publication, *, large: bool = False) -> None:
        try:
            self._share(state, pub)
        except Exception:  # the local publication still serves this process
            log.exception("could not share the publication of %s/%s", state.channel_id, state.subdir)
        if large:
            release_memory()  # the shards it wrote were held until now

    def _share(self, state: _PartitionState, pub: Publication) -> None:
        """Store the publication's addressed files built but not stored yet and its whole files
        (segmented ones are stored as they are built), compress what is made by compression, and
        point the partition at them."""
        # The shards of a small change are those of the names it touched: clients that follow the
        # channel ask for them next, so they stay in memory rather than be read back (a first build
        # of a large partition writes thousands, which would only push the ones in use out).
        warm = len(pub.pending) <= BACKGROUND_PENDING
        for digest, data in list(pub.pending.items()):
            put_bytes(self._blobs, digest, data)
            if warm:
                ADDRESSED_CACHE.put(digest, data)
            del pub.pending[digest]
        files = pub.index.files
        for name, data in list(files.items()):
            if isinstance(data, Compressed):
                chunk = pub.stored(name)
                pub.manifest[name] = (chunk.sha256, chunk.size)
            elif isinstance(data, bytes):
                put_bytes(self._blobs, pub.manifest[name][0], data)
        pub.stored_all = True
        manifest = {"format": FORMAT_VERSION,
                    "files": {k: [v[0], v[1]] for k, v in pub.manifest.items()},
                    "segmented": {k: [_manifest_part(p) for p in v.parts]
                                  for k, v in files.items() if isinstance(v, Segmented)},
                    "derive": {k: [v.source, v.codec] for k, v in pub.index.lazy.items() if isinstance(v, Compressed)},
                    "media_types": {k: v for k, v in pub.index.media_types.items() if pub.has(k)},
                    "etags": dict(pub.index.etags),
                    "lazy": sorted(k for k, v in pub.index.lazy.items() if not isinstance(v, Compressed))}
        if pub.previous_listing is not None:
            manifest["previous_listing"] = list(pub.previous_listing)
        if pub.index_snapshot is not None:
            manifest["index_state"] = pub.index_snapshot
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


def _fresh_index(state: _PartitionState) -> PartitionIndex:
    """An empty incremental index for the state's partition."""
    index = families.get(state.family).partition_index(state.subdir)
    assert index is not None
    return index


def _manifest_part(part: bytes | Chunk) -> str | dict[str, str] | list[str | int | None]:
    """A segmented file's part in a manifest: literal text (``{"b64": ...}`` for binary literals), or
    ``[sha256, size]`` then its deflate stream's ``sha256, size, crc`` (or three nulls) and its zstd
    blocks' ``sha256, size, window``."""
    if isinstance(part, bytes):
        try:
            return part.decode()
        except UnicodeDecodeError:
            return {"b64": base64.b64encode(part).decode()}
    entry: list[str | int | None] = [part.sha256, part.size, *(part.deflate or (None, None, None)),
                                     *(part.zstd or ())]
    while entry[-1] is None:
        entry.pop()
    return entry


def _part(entry: str | dict[str, str] | list[Any]) -> bytes | Chunk:
    if isinstance(entry, str):
        return entry.encode()
    if isinstance(entry, dict):
        return base64.b64decode(entry["b64"])
    sha, size, deflate_sha, deflate_size, crc, zstd_sha, zstd_size, window = [*entry, *[None] * (8 - len(entry))]
    return Chunk(str(sha), int(size),
                 None if deflate_sha is None else (str(deflate_sha), int(deflate_size), int(crc)),
                 None if zstd_sha is None else (str(zstd_sha), int(zstd_size), int(window)))


def release_memory() -> None:
    """Give the free pages of the C heap back to the system after a large build: glibc keeps them
    (a first build of a million records leaves ~100 MB that no Python object uses)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def manifest_blobs(manifest: dict[str, Any]) -> set[str]:
    """Every blob a pointer's manifest names (not the addressed files its listings name)."""
    used = {v[0] for v in manifest.get("files", {}).values()}
    for parts in manifest.get("segmented", {}).values():
        used.update(str(p[i]) for p in parts if isinstance(p, list) for i in (0, 2, 5)
                    if len(p) > i and p[i] is not None)
    if manifest.get("previous_listing"):
        used.add(manifest["previous_listing"][0])
    return used


def published_blobs(db: Session, blobs: BlobStore) -> set[str]:
    """Every blob that a current index publication pointer names: its files and parts, and the
    addressed files (shards) its listing and the previous listing name. Blobs of replaced
    publications are not in it: they are reclaimed like any other orphan. A publish that reuses a
    blob touches it, so a cleanup that started before keeps it."""
    used: set[str] = set()
    rows = db.execute(select(IndexPublication.family, IndexPublication.subdir, IndexPublication.manifest))
    for family, subdir, manifest in rows:
        manifest = manifest or {}
        used |= manifest_blobs(manifest)
        index = families.get(family).partition_index(subdir)
        addressed = index.addressed if index is not None else None
        if addressed is None:
            continue
        for entry in (manifest.get("files", {}).get(addressed.listing), manifest.get("previous_listing")):
            if entry and blobs.exists(entry[0]):
                used |= addressed.digests(read_blob(blobs, Chunk(entry[0], int(entry[1]))))
    return used


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def log_changes(db: Session, channel_id: str, changes: list[tuple[str, str]], *,
                even_if_frozen: bool = False) -> None:
    """Record (subdir, filename) changes of a channel; call inside the writer's transaction.

    The channel row is locked first, so that writers of one channel commit in the order of their
    log sequence numbers (on PostgreSQL; SQLite serializes writers anyway). Readers rely on that:
    once they have seen seq N of a channel, no smaller seq can appear later.

    While the channel is frozen the changes are held (``hold``), unless ``even_if_frozen``: files
    withheld, restored or removed, which a frozen channel's index must show too.
    """
    if not changes:
        return
    if lock_channel(db, channel_id) and not even_if_frozen:
        hold(db, channel_id, changes)
        return
    db.add_all(IndexChange(channel_id=channel_id, subdir=s, filename=f) for s, f in changes)
    ring_after_commit(db, channel_id)


# Session.info key: the channels whose bell rings when the session's transaction commits.
_TO_RING = "taipan_ring"


def ring_after_commit(db: Session, channel_id: str) -> None:
    """Have the channel's bell rung once this transaction commits (by ``ring_on_commit``): every
    writer of the index log calls it, so that other processes of this machine look at once."""
    db.info.setdefault(_TO_RING, set()).add(channel_id)


def ring_path_after_commit(db: Session, path: str) -> None:
    """Have the bell slot of a channel *path* rung once this transaction commits: the slot that a
    look-up which found no channel there noted (``ChannelCache``). Called wherever a path comes to
    name a channel (a channel or subchannel created, a user's own channel, a rename), so that every
    process of this machine finds it at once instead of answering 404 for up to its cache time.
    (Paths and ids share the slots: one that shares a slot with a channel only costs an extra look.)"""
    ring_after_commit(db, path)


def ring_on_commit(sessions: sessionmaker[Session], bell: Bell) -> None:
    """Ring, after each commit of a session of ``sessions``, the bells of the channels whose log it
    wrote (``ring_after_commit``). After the commit, never before: a process that looks when rung
    must find the change. A rolled-back transaction rings nothing (a leftover would only cost
    other processes an extra look)."""

    def after_commit(db: Session) -> None:
        for channel_id in db.info.pop(_TO_RING, ()):
            bell.ring(channel_id)

    def after_soft_rollback(db: Session, previous: Any) -> None:
        if previous.parent is None:
            db.info.pop(_TO_RING, None)

    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", after_soft_rollback)


def lock_channel(db: Session, channel_id: str) -> bool:
    """Serialize writers of one channel until commit. FOR NO KEY UPDATE, so that it does not
    conflict with the key-share locks that inserting rows referencing the channel takes. Returns
    whether the channel is frozen (read under the lock: a freeze or unfreeze commits before or after)."""
    return bool(db.scalar(select(Channel.frozen).where(Channel.id == channel_id).with_for_update(key_share=True)))


def changed_rows(channel_id: str, family: str, subdir: str, filenames: list[str]) -> Any:
    """The rows (file name, package name, record) of the named files of a partition that its index
    may list (not withheld): what a refresh applies. Answered from ``ix_files_channel_subdir_filename``,
    so it costs what the change does, not what the partition holds."""
    return select(File.filename, File.name, File.record).where(
        File.channel_id == channel_id, File.subdir == subdir, File.filename.in_(filenames),
        File.family == family, File.withheld.is_(False))


def held_query(channel_id: str, subdir: str) -> Any:
    """The file names of a partition held while its channel is frozen whose rows are not published
    (new files; a select). A replaced file's row is still the one its frozen index lists."""
    return select(HeldChange.filename).where(HeldChange.channel_id == channel_id, HeldChange.subdir == subdir,
                                             HeldChange.pending.is_(None))


def offered() -> Any:
    """The condition on ``File`` rows that their channel offers now (for download, SBOMs...): not
    withheld by its CVE filters, nor new while it is frozen and not published yet (``held_query``)."""
    return and_(File.withheld.is_(False), ~exists().where(
        HeldChange.channel_id == File.channel_id, HeldChange.subdir == File.subdir,
        HeldChange.filename == File.filename, HeldChange.pending.is_(None)))


def hold(db: Session, channel_id: str, changes: list[tuple[str, str]]) -> None:
    """Keep changes of a frozen channel out of its index log until it is unfrozen (the channel row is
    locked already). A file changed twice is held once."""
    wanted = set(changes)
    for subdir in {s for s, _ in wanted}:
        names = sorted(f for s, f in wanted if s == subdir)
        for chunk in _chunks(names, 500):
            known = set(db.scalars(held_query(channel_id, subdir).where(HeldChange.filename.in_(chunk))))
            new = [{"channel_id": channel_id, "subdir": subdir, "filename": f} for f in chunk if f not in known]
            if new:
                db.execute(insert(HeldChange.__table__), new)


# The columns of a file row that a replacement held in a frozen channel may set (``defer``).
REPLACEABLE = frozenset({"family", "name", "version", "sha256", "md5", "size", "record", "meta", "state",
                         "source_url"})


def defer(db: Session, channel_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A mirror run's replacements of files of a frozen channel (the channel row is locked already):
    a file its index lists keeps its row until the channel is unfrozen (its index and its URL go on
    offering the same bytes), and the new values are held with the change (a later run's replace
    them). Returns the rows to write at once: files new since the freeze, which nothing serves yet."""
    now_rows: list[dict[str, Any]] = []
    by_subdir: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_subdir.setdefault(r["subdir"], []).append(r)
    for subdir, group in by_subdir.items():
        for chunk in _chunks(group, 500):
            unpublished = set(db.scalars(held_query(channel_id, subdir).where(
                HeldChange.filename.in_([r["filename"] for r in chunk]))))
            later = [r for r in chunk if r["filename"] not in unpublished]
            now_rows += [r for r in chunk if r["filename"] in unpublished]
            if not later:
                continue
            db.execute(delete(HeldChange).where(HeldChange.channel_id == channel_id, HeldChange.subdir == subdir,
                                                HeldChange.filename.in_([r["filename"] for r in later])))
            db.execute(insert(HeldChange.__table__), [
                {"channel_id": channel_id, "subdir": subdir, "filename": r["filename"], "sha256": r["sha256"] or None,
                 "pending": {"id": r["id"], **{k: v for k, v in r.items() if k in REPLACEABLE}}} for r in later])
    return now_rows


def forget_held(db: Session, channel_id: str, files: list[tuple[str, str]]) -> None:
    """Files of a frozen channel removed (their removal logged at once): nothing of theirs is held."""
    for subdir in {s for s, _ in files}:
        for chunk in _chunks(sorted(f for s, f in files if s == subdir), 500):
            db.execute(delete(HeldChange).where(HeldChange.channel_id == channel_id, HeldChange.subdir == subdir,
                                                HeldChange.filename.in_(chunk)))


def release_held(db: Session, channel_id: str) -> list[str]:
    """On unfreeze: write the replacements held meanwhile to their rows and log every held change of
    the channel, so that every process publishes them (call in the transaction that unfreezes it,
    after the change to ``frozen`` is flushed). Returns the ids of the rows rewritten: their CVE
    scores are of their previous values, and the caller matches them again (as a mirror run matches
    the rows it writes), so that the channel's CVE filters withhold them before they are published."""
    lock_channel(db, channel_id)
    ring_after_commit(db, channel_id)
    held = db.execute(select(HeldChange.subdir, HeldChange.filename).where(HeldChange.channel_id == channel_id)).all()
    now = utcnow()
    after = ("", "")
    rewritten: list[str] = []
    while True:  # by pages: a day of a big upstream's record patches is many rows
        batch = db.execute(select(HeldChange.subdir, HeldChange.filename, HeldChange.pending).where(
            HeldChange.channel_id == channel_id, HeldChange.pending.is_not(None),
            tuple_(HeldChange.subdir, HeldChange.filename) > after)
            .order_by(HeldChange.subdir, HeldChange.filename).limit(2000)).all()
        if not batch:
            break
        after = (batch[-1][0], batch[-1][1])
        values = {p["id"]: p for _, _, p in batch}
        # A file removed since (by its mirror) has no row to write to: its removal is logged already.
        ids = set(db.scalars(select(File.id).where(File.id.in_(list(values)))))
        if ids:
            db.execute(update(File), [{**values[i], "updated_at": now} for i in ids])
            rewritten += sorted(ids)
    db.execute(delete(HeldChange).where(HeldChange.channel_id == channel_id))
    for start in range(0, len(held), 5000):
        db.execute(insert(IndexChange.__table__), [{"channel_id": channel_id, "subdir": s, "filename": f,
                                                    "created": now} for s, f in held[start:start + 5000]])
    return rewritten


class ChannelDocuments:
    """Channel-wide index documents (conda's ``channeldata.json``) as publications: built once per
    change of the channel's index log, not per request, and served like every index file (ETag,
    304, gzip and zstd content codings). The document's state is the highest log position of the
    partitions it summarises; it is checked at most once per poll interval unless this process
    wrote to the channel (``Indexer.notify``) or another rang the channel's bell. The documents
    asked for recently are looked at again ahead of need by ``keep_fresh``."""

    def __init__(self, sessions: sessionmaker[Session], poll_interval: float, bell: Bell) -> None:
        self._sessions = sessions
        self.poll_interval = poll_interval
        self._rung = bell.values
        # (channel id, name) -> (when the log was looked at, its position, the publication, the
        # channel's bell slot as read before that look)
        self._items: dict[tuple[str, str], tuple[float, int, Publication, int]] = {}
        # (channel id, name) -> [when last asked for (time.monotonic()), how to make it again]
        self._wanted: dict[tuple[str, str], list[Any]] = {}
        self._dirty: set[str] = set()
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def touch(self, channel_id: str) -> None:
        self._dirty.add(channel_id)

    def forget(self, channel_ids: list[str]) -> None:
        with self._guard:
            for key in [k for k in self._items if k[0] in channel_ids]:
                del self._items[key]
            for key in [k for k in self._wanted if k[0] in channel_ids]:
                self._wanted.pop(key, None)

    def peek(self, channel_id: str, name: str) -> Publication | None:
        hit = self._items.get((channel_id, name))
        if hit is None:
            return None
        now = time.monotonic()
        wanted = self._wanted.get((channel_id, name))
        if wanted is not None:
            wanted[0] = now
        if not self._current(channel_id, hit, now, self.poll_interval):
            return None
        return hit[2]

    def _current(self, channel_id: str, hit: tuple[float, int, Publication, int], now: float, age: float) -> bool:
        """May a document looked at ``now - hit[0]`` seconds ago be used without a look at the log?
        Not when this process wrote to the channel, nor once ``age`` has passed, nor when another
        process of this machine rang the channel's bell."""
        return channel_id not in self._dirty and now - hit[0] < age and self._rung[Bell.slot(channel_id)] == hit[3]

    def keep_fresh(self, used_since: float, age: float, channel_ids: set[str]) -> None:
        """Look again ahead of need (as a request would: the log, and a build when it moved) at the
        documents of ``channel_ids`` asked for since ``used_since`` whose last look is ``age``
        seconds old (less than poll_interval), so that requests keep finding them current; the
        others are forgotten. Called by the serving process's refresher (web.keep_fresh)."""
        for key, wanted in list(self._wanted.items()):
            if wanted[0] < used_since:
                self._wanted.pop(key, None)
                continue
            hit = self._items.get(key)
            if key[0] not in channel_ids or hit is not None and self._current(key[0], hit, time.monotonic(), age):
                continue
            self._look(key, *wanted[1:])

    def publication(self, channel_id: str, name: str, partitions: frozenset[str], media_type: str,
                    build: Callable[[], bytes]) -> Publication:
        """The current publication of document ``name``, summarising ``partitions`` of the channel;
        ``build`` makes its bytes (in this thread, once per change)."""
        pub = self.peek(channel_id, name)
        if pub is not None:
            return pub
        key = (channel_id, name)
        if len(self._wanted) >= 10000:
            self._wanted.clear()
        self._wanted[key] = [time.monotonic(), partitions, media_type, build]
        return self._look(key, partitions, media_type, build)

    def _look(self, key: tuple[str, str], partitions: frozenset[str], media_type: str,
              build: Callable[[], bytes]) -> Publication:
        channel_id, name = key
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            self._dirty.discard(channel_id)
            rung = self._rung[Bell.slot(channel_id)]
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
            self._items[key] = (time.monotonic(), seq, pub, rung)
            return pub
