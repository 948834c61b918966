"""One published state of a partition's index (``Publication``) and how its files reach the blob
store and the wire, for every family.

A file of a publication is one of:
- ``bytes``: prepared in memory (Python pages, CRAN's ``PACKAGES``, the conda shard index);
- ``Segmented``: literal bytes and stored chunks in order (conda's ``repodata.json``); served by
  streaming the chunks from the blob store; gzip-encoded as one member made of the chunks' deflate
  streams (see ``_gzip``);
- ``Chunk``: one stored blob, read per request (or kept in memory when small);
- ``Compressed``: another file of the publication compressed; made by streaming the source through
  a compressor into a temporary file of the blob store (bounded memory), then stored as a ``Chunk``.
Content-addressed files (``Addressed``: conda's CEP-16 shards) are served by their digest when the
publication's listing file, or the previous publication's, names it.
"""

from __future__ import annotations

import bz2
import ctypes
import ctypes.util
import gzip
import hashlib
import os
import struct
import tempfile
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from taipan.domain.families import IndexFiles
from taipan.domain.families.base import Addressed, Chunk, Compressed, Segmented, deflate
from taipan.errors import NotFound, ServiceUnavailable
from taipan.storage.base import BlobStore

# What a file is, once it can be served.
Body = bytes | Chunk | Segmented

# Media types worth compressing on the fly for clients that accept it (once per publication).
COMPRESSIBLE = ("application/json", "text/", "application/vnd.pypi.simple")
GZIP_LEVEL = 6
# How long a request waits for another request's build of the same lazily derived file.
LAZY_BUILD_WAIT = 30.0
# Stored whole files up to this size stay in memory once read, and a segmented body (identity or
# gzip) up to it is joined once per publication and kept: streaming hundreds of small parts per
# request costs far more than the bytes (at 10k records, 3.5 req/s streamed against thousands
# joined). Larger ones are streamed in STREAM_PIECE pieces, each read in one go. The default of
# ``Publication.memory_limit`` (TAIPAN_SERVER__INDEX_MEMORY_LIMIT).
MEMORY_LIMIT = 16 << 20
# The gzip coding is what clients ask for, a fifteenth of the identity's size: it is joined up to this
# many times the limit. At 1M records the gzip of repodata.json is 25 MB: streamed from its few
# hundred parts it went at 27 answers/s, a quarter of nginx's rate for the same bytes from a file. (Not
# the zstd coding: that is the stored .zst file, under the same key whether asked for by name or by
# coding, so its limit is the file's.)
COMPRESSED_FACTOR = 4
# Every connection streaming a file holds about two pieces (one being sent, one being read): with
# 32 clients of a 37 MB repodata.json, 1 MiB pieces kept ~60 MB more resident than 256 KiB ones,
# at the same rate.
STREAM_PIECE = 256 << 10
# Bytes of addressed files (shards) a build may leave to be written after it (a first build of a
# large subdir writes thousands of them).
DEFER_LIMIT = 64 << 20


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
    # Where stored files are read (None: every file is bytes in memory, e.g. a channel document).
    blobs: BlobStore | None = field(default=None, repr=False)
    # name -> (sha256, size) of every whole file stored in the blob store.
    manifest: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Names derived on demand whose builders this process does not hold (an adopted publication).
    lazy_names: frozenset[str] = frozenset()
    adopted: bool = False
    addressed: Addressed | None = None
    # The digests of addressed files this publication's listing names, and the previous one's.
    addressed_digests: frozenset[str] = frozenset()
    previous_digests: frozenset[str] = frozenset()
    previous_listing: tuple[str, int] | None = None
    memory_limit: int = MEMORY_LIMIT
    # True once every whole file of the manifest is in the blob store (a large publication is
    # served before its sharing thread has written them).
    stored_all: bool = False
    # The incremental index's snapshot at this publication (``PartitionIndex.snapshot``): with the
    # files, what another process resumes from instead of rebuilding the partition.
    index_snapshot: dict[str, Any] | None = None
    # Addressed files built with this publication and not stored yet (digest -> bytes).
    pending: dict[str, bytes] = field(default_factory=dict, repr=False)
    # What the serving layer prepared from this publication, valid as long as the publication (it
    # never changes): per file name, the codings it is offered in (``encodings``); per file, coding
    # and kind of caller, the answer's headers.
    offered: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    answers: dict[object, object] = field(default_factory=dict, repr=False, compare=False)
    _materialize: Callable[[], Publication] | None = field(default=None, repr=False)
    _local: Publication | None = field(default=None, repr=False)
    _lazy: dict[str, Body] = field(default_factory=dict, repr=False)
    _locks: dict[str, threading.Lock] = field(default_factory=dict, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def store(self) -> BlobStore:
        assert self.blobs is not None, "a publication without a blob store has only bytes"
        return self.blobs

    def has(self, name: str) -> bool:
        return (name in self.index.files or name in self.index.lazy or name in self.manifest
                or name in self.lazy_names or self._addressed(name) is not None)

    def _addressed(self, name: str) -> str | None:
        digest = self.addressed.digest_of(name) if self.addressed is not None else None
        if digest is not None and (digest in self.addressed_digests or digest in self.previous_digests):
            return digest
        return None

    def etag(self, name: str) -> str:
        override = self.index.etags.get(name)
        if override is not None:
            return override
        digest = self._addressed(name)
        if digest is not None:
            return f'"{digest[:32]}"'
        return f'"{self.etag_base}-{name.replace(".", "-").replace("/", "-")}"'

    def media_type(self, name: str) -> str:
        if self.addressed is not None and self.addressed.digest_of(name) is not None:
            return self.addressed.media_type
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

    def etag_for(self, name: str, coding: str | None) -> str:
        etag = self.etag(name)
        return etag if coding is None else f'{etag[:-1]}-{coding}"'

    def is_ready(self, name: str, coding: str | None) -> bool:
        """True when the body is bytes in memory already (no thread, no I/O, no build)."""
        return self.ready(name, coding) is not None

    def ready(self, name: str, coding: str | None) -> bytes | None:
        """The body of ``name`` in ``coding`` when it is bytes in memory already (``is_ready``), else
        None."""
        key = _coded(name, coding)
        body = self.index.files.get(key)
        if isinstance(body, bytes):
            return body
        body = self._lazy.get(key)
        if isinstance(body, bytes):
            return body
        body = self._lazy.get(f"{key}|joined")
        if isinstance(body, bytes):
            return body
        digest = self._addressed(key)
        return None if digest is None else self.addressed_ready(digest)

    def addressed_digest(self, name: str, coding: str | None) -> str | None:
        """The digest of the addressed file (shard) ``name`` in ``coding`` that this publication
        lists, else None: its bytes are ``addressed_ready(digest)`` when in memory."""
        return self._addressed(_coded(name, coding))

    def addressed_ready(self, digest: str) -> bytes | None:
        """``ready`` for an addressed file known by its digest (``addressed_digest``): not stored yet
        (kept with the publication until it is), or in the process's cache."""
        pending = self.pending.get(digest)
        return pending if pending is not None else ADDRESSED_CACHE.get(digest)

    def is_addressed(self, name: str) -> bool:
        """Does ``name`` have the form of an addressed file (a shard), listed or not?"""
        return self.addressed is not None and self.addressed.digest_of(name) is not None

    def blob(self, name: str, coding: str | None) -> str | None:
        """The sha256 of the one stored blob that holds ``name`` exactly as sent in ``coding``
        (identity, or zstd from ``<name>.zst``), so that a front server may send it itself; None for
        bytes only in memory, files in segments, and codings made on demand (gzip)."""
        key = {None: name, "zstd": name + ".zst"}.get(coding)
        if key is None:
            return None
        if key in self.manifest:
            return self.manifest[key][0] if self.stored_all else None
        body = self.index.files.get(key, self._lazy.get(key))
        if isinstance(body, Chunk):
            return body.sha256
        digest = self._addressed(key)
        return None if digest is None or digest in self.pending else digest

    def encoded(self, name: str, coding: str | None) -> Body:
        """The body of ``name`` in a content coding (None: identity); gzip is made once per
        publication, on first request, deterministically (no timestamp in the header). A segmented
        body up to ``memory_limit`` is joined, once per publication."""
        key = _coded(name, coding)
        joined = self._lazy.get(f"{key}|joined")
        if joined is not None:
            return joined
        if coding is None:
            body = self.body(name)
        elif coding == "zstd":
            body = self.body(name + ".zst")
        else:
            body = self._derive(key, lambda pub: _gzip(pub, pub.body(name)))
        limit = self.memory_limit * COMPRESSED_FACTOR if coding == "gzip" else self.memory_limit
        if isinstance(body, Segmented) and body.size <= limit:
            segmented = body
            return self._derive(f"{key}|joined", lambda pub: b"".join(pub.stream(segmented)))
        return body

    def body(self, name: str) -> Body:
        """One file, as bytes or as stored chunks to stream; derived files are built on first use,
        once per publication. One lock per file, so that a derived file may build from another
        without waiting on itself; and a bounded wait, so that no request thread is held for ever."""
        prepared = self.index.files.get(name)
        if isinstance(prepared, bytes | Segmented):
            return prepared
        stored = self.stored(name) if prepared is not None or name in self.manifest else None
        if stored is not None:
            if stored.size <= self.memory_limit:
                return self._derive(name, lambda pub: read_blob(pub.store, stored))
            return stored
        digest = self._addressed(name)
        if digest is not None:
            pending = self.pending.get(digest)
            return pending if pending is not None else ADDRESSED_CACHE.read(self.store, digest)
        build = self.index.lazy.get(name)
        if build is None and name in self.lazy_names and self._materialize is not None:
            materialize = self._materialize
            build = lambda pub: materialize().file(name)  # noqa: E731
        if isinstance(build, Compressed):
            spec = build
            return self._derive(name, lambda pub: compress(pub, spec))
        if build is None:
            raise KeyError(name)
        return self._derive(name, build)

    def stored(self, name: str) -> Chunk:
        """The stored chunk of a whole file; one made by compression is made now (once)."""
        prepared = self.index.files.get(name)
        if isinstance(prepared, Compressed):
            spec = prepared
            chunk = self._derive(f"{name}|stored", lambda pub: compress(pub, spec))
        else:
            chunk = Chunk(*self.manifest[name]) if name in self.manifest else prepared
        assert isinstance(chunk, Chunk)
        return chunk

    def file(self, name: str) -> bytes:
        """The whole bytes of one file (for families whose derived files are made from bytes)."""
        body = self.body(name)
        return body if isinstance(body, bytes) else b"".join(self.stream(body))

    def stream(self, body: Body) -> Iterator[bytes]:
        """The bytes of a body in pieces of about STREAM_PIECE (each piece is one step of a
        response's iterator, i.e. one hop to a thread: not one per part)."""
        if isinstance(body, bytes):
            yield body
            return
        if isinstance(body, Chunk):
            yield from self.store.iter_bytes(body.sha256)
            return
        piece: list[bytes] = []
        size = 0
        for part in body.parts:
            data = part if isinstance(part, bytes) else read_blob(self.store, part)  # at most one bucket
            piece.append(data)
            size += len(data)
            if size >= STREAM_PIECE:
                yield b"".join(piece)
                piece, size = [], 0
        if piece:
            yield b"".join(piece)

    def _derive(self, name: str, build: Callable[[Publication], Body]) -> Body:
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


def _coded(name: str, coding: str | None) -> str:
    """The key of a file in a content coding: itself, its ``.zst`` sibling, or its gzip."""
    return name if coding is None else (name + ".zst" if coding == "zstd" else f"{name}|gzip")


def body_size(body: Body) -> int:
    return len(body) if isinstance(body, bytes) else body.size


def _gzip(pub: Publication, body: Body) -> Body:
    """gzip content coding, one member (several are not read by every client, httpx for one). A
    segmented file's member is its chunks' deflate streams (stored with them) and its literals',
    between a header and a trailer whose CRC-32 is combined from the parts' CRCs."""
    if isinstance(body, Chunk):
        body = read_blob(pub.store, body)
    if isinstance(body, bytes):
        return gzip.compress(body, GZIP_LEVEL, mtime=0)
    parts: list[bytes | Chunk] = [GZIP_HEADER]
    crc = 0
    for p in body.parts:
        if isinstance(p, bytes):
            parts.append(deflate(p, GZIP_LEVEL))
            crc = crc32_combine(crc, zlib.crc32(p), len(p))
        else:
            assert p.deflate is not None
            parts.append(Chunk(p.deflate[0], p.deflate[1]))
            crc = crc32_combine(crc, p.deflate[2], p.size)
    parts.append(DEFLATE_END + struct.pack("<II", crc, body.size & 0xFFFFFFFF))
    return Segmented(tuple(parts))


# A gzip header without name or time; the final empty block of a deflate stream.
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
DEFLATE_END = b"\x03\x00"
_ZEROS = bytes(1 << 20)


def _zlib_crc32_combine() -> Callable[[int, int, int], int] | None:
    """zlib's own ``crc32_combine`` (O(log n) in the length), from the zlib that Python's ``zlib``
    module uses; the standard library does not expose it. None where that library cannot be loaded."""
    libz = None
    for name in ("libz.so.1", "libz.dylib"):
        try:
            libz = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if libz is None:
        found = ctypes.util.find_library("z")  # runs ldconfig (a subprocess): only when those fail
        try:
            libz = ctypes.CDLL(found) if found else None
        except OSError:
            libz = None
    combine = getattr(libz, "crc32_combine", None)
    if combine is None:
        return None
    combine.restype = ctypes.c_ulong
    combine.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long]
    return lambda crc1, crc2, len2: int(combine(crc1, crc2, len2)) & 0xFFFFFFFF


_COMBINE = _zlib_crc32_combine()


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """The CRC-32 of A + B from those of A and of B (``len2`` bytes). zlib's when it can be
    loaded: the way below costs a CRC over 2 x len2 zero bytes, 0.35 s for the parts of a 376 MB
    ``repodata.json`` (1M records), on the first gzip request after every change."""
    if _COMBINE is not None:
        return _COMBINE(crc1, crc2, len2)
    return _crc32_combine_by_zeros(crc1, crc2, len2)


def _crc32_combine_by_zeros(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 is affine: the CRC of A + B is that of A continued over len2 zero bytes, minus that of
    the zeros alone, plus B's."""
    a, z = crc1, 0
    zeros = memoryview(_ZEROS)
    while len2 > 0:
        n = min(len2, len(_ZEROS))
        a, z = zlib.crc32(zeros[:n], a), zlib.crc32(zeros[:n], z)
        len2 -= n
    return a ^ z ^ crc2


def read_blob(blobs: BlobStore, chunk: Chunk) -> bytes:
    with blobs.open(chunk.sha256) as f:
        data = f.read()
    if len(data) != chunk.size:
        raise ServiceUnavailable("An index file is being replaced", "Retry in a few seconds",
                                 code="index_building", retry_after=1)
    return data


class _AddressedCache:
    """Content-addressed files (shards) once read, by digest, within a byte budget (the oldest go
    first): their bytes never change, so every publication of the process shares them (each still
    answers only the digests it lists). Without it every shard request is a blob read in a thread."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __contains__(self, digest: str) -> bool:
        return digest in self._items

    def get(self, digest: str) -> bytes | None:
        """The bytes when they are in memory (no I/O)."""
        return self._items.get(digest)

    def read(self, blobs: BlobStore, digest: str) -> bytes:
        data = self._items.get(digest)
        if data is not None:
            return data
        data = _read_addressed(blobs, digest)
        self.put(digest, data)
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Keep ``data`` (whose digest is ``digest``) unless it is larger than a sixteenth of the
        budget; the oldest go to make room."""
        if len(data) <= self.limit // 16:
            with self._lock:
                if digest not in self._items:
                    self._items[digest] = data
                    self._size += len(data)
                while self._size > self.limit:
                    self._size -= len(self._items.popitem(last=False)[1])


# Shards of a 100k-record subdir are ~15 MB in all; the most asked ones stay. A server process sets
# its budget from TAIPAN_SERVER__SHARD_CACHE_SIZE.
ADDRESSED_CACHE = _AddressedCache(16 << 20)


def _read_addressed(blobs: BlobStore, digest: str) -> bytes:
    try:
        with blobs.open(digest) as f:
            return f.read()
    except FileNotFoundError:
        raise NotFound("This shard is no longer published", "Fetch the shard index again",
                       code="shard_not_found") from None


class _HashingWriter:
    """A file that hashes and counts what is written to it."""

    def __init__(self, f: BinaryIO) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.f.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self.f.flush()


def compress(pub: Publication, spec: Compressed) -> Chunk:
    """Stream ``spec.source`` of the publication through a compressor into the blob store."""
    source = pub.body(spec.source)

    def write(out: _HashingWriter) -> None:
        if spec.codec != "bz2":
            raise ValueError(f"unknown codec {spec.codec}")
        comp = bz2.BZ2Compressor(9)
        for piece in pub.stream(source):
            out.write(comp.compress(piece))
        out.write(comp.flush())

    return put_stream(pub.store, write)


def put_stream(blobs: BlobStore, write: Callable[[_HashingWriter], None]) -> Chunk:
    """Store what ``write`` writes, through a temporary file of the blob store; its chunk."""
    fd, tmp = tempfile.mkstemp(dir=blobs.tempdir(), prefix="index-")
    try:
        with os.fdopen(fd, "wb") as f:
            out = _HashingWriter(f)
            write(out)
        sha = out.sha.hexdigest()
        if not blobs.touch(sha):
            blobs.put_file(sha, Path(tmp), move=True)
        return Chunk(sha, out.size)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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


@dataclass
class BlobSink:
    """The ``ContentStore`` an index writes to while it builds: the blob store. What may be written
    later is kept (up to ``DEFER_LIMIT`` bytes) for the indexer to write after the build."""

    blobs: BlobStore
    deferred: dict[str, bytes] = field(default_factory=dict)
    deferred_size: int = 0

    def put(self, sha256: str, data: bytes, *, later: bool = False) -> None:
        if later and self.deferred_size + len(data) <= DEFER_LIMIT:
            self.deferred[sha256] = data
            self.deferred_size += len(data)
            return
        put_bytes(self.blobs, sha256, data)

    def get(self, sha256: str) -> bytes:
        with self.blobs.open(sha256) as f:
            return f.read()
