"""Stored artifact files (packages, wheels, R packages, notebooks...) answered straight in ASGI.

What a download needs (``StoredFile``: the file's identity for the download record, its digest for
the ETag, its size and blob path) is found once per (channel, ckey) and kept in memory no longer than
the index that lists the file: an entry is used only while the publication of the file's partition it
was found under is still the current one (``Indexer.peek`` returns that very object), so a removed,
moved, replaced or withheld file stops being served when its partition's index stops listing it (in a
frozen channel too: its index is refreshed when a file is withheld or removed, and what is written
to it meanwhile is neither listed nor found for download until it is unfrozen). Files of families
without an index are kept ``TTL`` seconds, as long as a channel is cached, and no longer than the
channel's change bell is silent (another process of this machine changed the channel:
``storage/bell.py``). A miss makes the entries of
the partition's other files at once (``StoredFiles.fill``, one query), and the serving process's
refresher does it again when a partition so filled has a new publication (``StoredFiles.keep_fresh``).

The answer (``send``) is the same for the in-memory fast path (``app.RepoApp``) and the full path
(``common.send_stored_file``): ETag and ``If-None-Match`` (304), HEAD, one ``Range`` (206, 416,
``If-Range``; several ranges get the whole file), a download recorded once per GET from byte 0, and
the bytes by the cheapest means the deployment offers: an offload header for nginx or a sendfile
front, the server's ``http.response.pathsend`` (granian) for whole files, else reads of the blob.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import formatdate
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from taipan.db.models import File
from taipan.domain.permissions import Principal
from taipan.errors import TaipanError
from taipan.runtime import Runtime
from taipan.services import serving
from taipan.services.publication import Publication
from taipan.storage.bell import Bell

TTL = 1.0
MAX_ENTRIES = 50_000
# On a miss, the lookups of at most this many files of the partition are made in one query (a
# client that asks for one package of a partition often asks for others of it next).
FILL_LIMIT = 1000
# Reads of the blob when the server cannot send a path: a span up to PREAD_LIMIT is read on the
# event loop (one pread of a page-cached blob costs less than a hop to a thread), up to WHOLE_LIMIT in
# one read in a thread, beyond that CHUNK at a time (bounded memory per download). See
# benchmarks/README.md for the measurements behind these bounds.
PREAD_LIMIT = 64 * 1024
WHOLE_LIMIT = 2 * 1024 * 1024
CHUNK = 1024 * 1024
# A body larger than this is handed to the server in pieces of this size: granian sends a 2.4 MB
# body given in one message at a third of the rate of the same body in 64-256 KiB pieces (1 MiB
# pieces are as slow as one message); uvicorn sends both alike (benchmarks/README.md, Fixed
# per-request cost).
BODY_PIECE = 256 * 1024
OCTET_STREAM = b"application/octet-stream"
CACHE_CONTROL = {True: b"public, max-age=31536000, immutable", False: b"private, max-age=31536000, immutable"}


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What answering a download of one stored file needs, without the database."""

    ckey: str
    subdir: str  # the partition whose publication lists the file
    identity: Mapping[str, Any]  # the file as a download record names it
    size: int
    path: str
    etag: bytes
    last_modified: bytes
    offload: tuple[bytes, bytes] | None  # the header that hands the sending to a front server

    @classmethod
    def of(cls, rt: Runtime, f: File, path: Path) -> StoredFile:
        stat = path.stat()
        return cls(f.ckey, f.subdir, file_identity(f), stat.st_size, str(path), f'"{f.sha256}"'.encode(),
                   formatdate(stat.st_mtime, usegmt=True).encode(), offload_header(rt, path))


def file_identity(f: File) -> dict[str, Any]:
    return {"file_id": f.id, "family": f.family, "package": f.name, "version": f.version, "ckey": f.ckey,
            "subdir": f.subdir, "filename": f.filename, "size": f.size}


def offload_header(rt: Runtime, path: Path) -> tuple[bytes, bytes] | None:
    """The header by which a front server sends the blob at ``path`` itself (server.offload):
    nginx's X-Accel-Redirect names it under an internal location aliasing the blob directory,
    X-Sendfile by its path. None when offload is off (or the blob is outside that directory)."""
    mode, root = rt.settings.server.offload, rt.settings.blob_path
    if mode == "x-sendfile":
        return b"x-sendfile", str(path).encode()
    if mode == "x-accel-redirect" and path.is_relative_to(root):
        return b"x-accel-redirect", (rt.settings.server.offload_prefix + path.relative_to(root).as_posix()).encode()
    return None


class StoredFiles:
    """(channel id, ckey) -> StoredFile, valid while the partition's publication is unchanged."""

    def __init__(self, bell: Bell) -> None:
        self._rung = bell.values
        # -> the entry, the publication it was found under (None: kept until the deadline), the
        # deadline, and the channel's bell slot as read before the lookup
        self._items: dict[tuple[str, str], tuple[StoredFile, Publication | None, float, int]] = {}
        self._lock = threading.Lock()
        # (channel id, partition) -> its family and the publication it was filled under (not kept
        # alive by this), None: too large to fill
        self._filled: dict[tuple[str, str], tuple[str, weakref.ref[Publication] | None]] = {}
        self._fill_lock = threading.Lock()

    def peek(self, rt: Runtime, channel_id: str, ckey: str) -> StoredFile | None:
        """The entry while it is valid, without I/O; None when a lookup is due (or the partition's
        publication needs a look at the log)."""
        hit = self._items.get((channel_id, ckey))
        if hit is None:
            return None
        current = None if hit[1] is None else rt.indexer.peek(channel_id, hit[0].subdir)
        return self._valid(channel_id, hit, current)

    def get(self, channel_id: str, ckey: str, current: Publication | None) -> StoredFile | None:
        """The entry if it is valid under ``current``, the partition's current publication."""
        hit = self._items.get((channel_id, ckey))
        return None if hit is None else self._valid(channel_id, hit, current)

    def _valid(self, channel_id: str, hit: tuple[StoredFile, Publication | None, float, int],
               current: Publication | None) -> StoredFile | None:
        f, pub, deadline, rung = hit
        if pub is None:
            # A file without an index: the entry lasts TTL seconds, and not past a change of the
            # channel in another process of this machine.
            return f if deadline > time.monotonic() and self._rung[Bell.slot(channel_id)] == rung else None
        return f if current is pub else None

    def rung(self, channel_id: str) -> int:
        """The channel's bell slot now: read before a lookup whose entry is ``put``."""
        return self._rung[Bell.slot(channel_id)]

    def put(self, channel_id: str, f: StoredFile, pub: Publication | None, rung: int) -> None:
        with self._lock:
            if len(self._items) >= MAX_ENTRIES:
                self._items.clear()
            self._items[(channel_id, f.ckey)] = (f, pub, time.monotonic() + TTL, rung)

    def fill(self, rt: Runtime, channel_id: str, index: tuple[str, str], pub: Publication) -> None:
        """After a miss under ``pub``, the current publication of partition ``index`` (family,
        partition), looked at before this: make the entries of the partition's files at once (one
        query), once per publication, instead of one query per file asked for; a partition of more
        than FILL_LIMIT files only once. Files without a local blob are left to the per-file lookup
        (which says why)."""
        key = (channel_id, index[1])
        if self._done(key, pub):
            return
        with self._fill_lock:
            if self._done(key, pub):
                return
            rung = self.rung(channel_id)
            found = []
            files = serving.partition_files(rt.sessions, channel_id, index[0], index[1], FILL_LIMIT + 1)
            for f in files:
                path = rt.blobs.local_path(f.sha256)
                if path is None:
                    return  # an object store: downloads are presigned redirects, on the full path
                try:
                    found.append(StoredFile.of(rt, f, path))
                except FileNotFoundError:
                    continue
            with self._lock:
                if len(self._items) + len(found) >= MAX_ENTRIES:
                    self._items.clear()
                if len(self._filled) >= 10000:
                    self._filled.clear()
                deadline = time.monotonic() + TTL
                for f in found:
                    self._items[(channel_id, f.ckey)] = (f, pub, deadline, rung)
                # A partition larger than that is not filled again (which of its files is asked for
                # is anyone's guess): each of its files is looked up when asked for.
                self._filled[key] = (index[0], weakref.ref(pub) if len(files) <= FILL_LIMIT else None)

    def _done(self, key: tuple[str, str], pub: Publication) -> bool:
        """Was the partition filled under ``pub``, or is it too large to fill?"""
        filled = self._filled.get(key)
        return filled is not None and (filled[1] is None or filled[1]() is pub)

    def keep_fresh(self, rt: Runtime) -> None:
        """Fill again, under its new publication, each partition filled under the previous one
        (its files were being downloaded), so that the first download after a change is answered
        from memory too. Called by the serving process's refresher (web.keep_fresh) after the
        indexer's: only partitions in use have a new publication then."""
        for key, (family, filled) in list(self._filled.items()):
            if filled is None:
                continue
            current = rt.indexer.current(*key)
            if current is not None and current is not filled():
                self.fill(rt, key[0], (family, key[1]), current)


def stored_files(rt: Runtime) -> StoredFiles:
    cache = rt.extras.get("stored_files")  # made once: this runs on every download
    return cache if cache is not None else rt.extras.setdefault("stored_files", StoredFiles(rt.indexer.bell))


def current_publication(rt: Runtime, channel_id: str, index: tuple[str, str]) -> Publication | None:
    """The current publication of the partition (family, partition) that lists a file, refreshed if
    due (blocking: call it from a thread); None when it cannot be had now (the file is then served
    from the database without being remembered)."""
    family, subdir = index
    pub = rt.indexer.peek(channel_id, subdir)
    if pub is not None:
        return pub
    try:
        return rt.indexer.publication(channel_id, subdir, family=family)
    except TaipanError:
        return None


def record_download(rt: Runtime, scope: Scope, p: Principal, view: Any, identity: Mapping[str, Any]) -> None:
    """One download of a file (``identity``: see file_identity) by ``p``, batched by the recorder."""
    _record(rt, scope.get("client"), _header(scope, b"user-agent"), p, view, identity)


def _record(rt: Runtime, client: tuple[str, int] | None, agent: bytes, p: Principal, view: Any,
            identity: Mapping[str, Any]) -> None:
    text = agent.decode("latin-1")[:300]
    rt.downloads.record(
        channel_id=view.id, channel_path=view.path, **identity, user_id=p.user_id, username=p.username,
        token_id=p.token_id, remote_addr=client[0] if client else None, user_agent=text or None)


class StoredFileResponse(Response):
    """A Response that answers with ``send``: the full path's form of the fast path's answer."""

    def __init__(self, rt: Runtime, p: Principal, view: Any, f: StoredFile) -> None:
        super().__init__()
        self.rt, self.p, self.view, self.f = rt, p, view, f

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await answer(scope, send, self.rt, self.p, self.view, self.f)


@dataclass(slots=True)
class FileAnswer:
    """The answer to a download: its status and headers, then its body, or the span of the blob at
    ``path`` that is the body (``start``, ``length``; the whole file when ``whole``)."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    path: str | None = None
    start: int = 0
    length: int = 0
    whole: bool = False


def plan(method: str, headers_in: Mapping[bytes, bytes], client: tuple[str, int] | None, rt: Runtime,
         p: Principal, view: Any, f: StoredFile, extra: tuple[tuple[bytes, bytes], ...] = ()) -> FileAnswer:
    """How to answer a download of ``f`` (and record it): ``headers_in`` are the request's headers
    (the first value of each), ``client`` its client's address; ``extra``: headers added to the answer.
    An answer with a body from the blob carries its length; any other, the length of ``body``."""
    headers = [(b"etag", f.etag), (b"last-modified", f.last_modified),
               (b"cache-control", CACHE_CONTROL[view.privacy == "public"]), *extra]
    inm = headers_in.get(b"if-none-match")
    if inm and etag_listed(inm, f.etag):
        return FileAnswer(304, headers)
    get = method == "GET"
    rng = headers_in.get(b"range")
    if get and (not rng or rng.startswith(b"bytes=0-")):
        _record(rt, client, headers_in.get(b"user-agent") or b"", p, view, f.identity)
    headers.append((b"content-type", OCTET_STREAM))
    if f.offload is not None:
        # The front server sends the bytes (and answers Range itself) after this authorisation.
        return FileAnswer(200, [*headers, f.offload, (b"content-length", b"0")])
    headers.append((b"accept-ranges", b"bytes"))
    span = _range(rng, f.size) if rng and _if_range_holds(headers_in.get(b"if-range"), f) else None
    if span == ():
        return FileAnswer(416, [*headers, (b"content-range", f"bytes */{f.size}".encode()),
                                (b"content-length", b"0")])
    start, length = span or (0, f.size)
    if span:
        headers.append((b"content-range", f"bytes {start}-{start + length - 1}/{f.size}".encode()))
    headers.append((b"content-length", str(length).encode()))
    status = 206 if span else 200
    if not get:
        return FileAnswer(status, headers)
    return FileAnswer(status, headers, path=f.path, start=start, length=length, whole=not span)


async def answer(scope: Scope, send: Send, rt: Runtime, p: Principal, view: Any, f: StoredFile,
                 headers_in: Mapping[bytes, bytes] | None = None, extra: tuple[tuple[bytes, bytes], ...] = ()) -> int:
    """Answer a download of ``f`` through ASGI; returns the status (see ``plan``)."""
    if headers_in is None:
        headers_in = first_values(scope["headers"])
    a = plan(scope["method"], headers_in, scope.get("client"), rt, p, view, f, extra)
    if a.path is None:
        return await _finish(send, a.status, a.headers, a.body)
    if a.whole and "http.response.pathsend" in scope.get("extensions", {}):
        await send({"type": "http.response.start", "status": a.status, "headers": a.headers})
        await send({"type": "http.response.pathsend", "path": a.path})
        return a.status
    return await _send_span(send, a.status, a.headers, a.path, a.start, a.length)


def first_values(headers: list[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """An ASGI scope's headers as a mapping, the first value of each name (as Starlette reads them)."""
    return dict(reversed(headers))


def blob_missing(headers: list[tuple[bytes, bytes]]) -> FileAnswer:
    """The answer when the blob of a stored file is not where the index says."""
    kept = [h for h in headers if h[0] == b"x-request-id"]  # added by the fast path
    body = (b'{"code": "blob_missing", "message": "The stored file is missing", '
            b'"hint": "Ask an admin to check the blob store"}')
    return FileAnswer(404, [(b"content-type", b"application/json"), *kept,
                            (b"content-length", str(len(body)).encode())], body)


async def _send_span(send: Send, status: int, headers: list[tuple[bytes, bytes]], path: str, start: int,
                     length: int) -> int:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        missing = blob_missing(headers)
        return await _finish(send, missing.status, missing.headers, missing.body)
    try:
        if length <= PREAD_LIMIT:
            body = _pread(fd, start, length)
        elif length <= WHOLE_LIMIT:
            body = await run_in_threadpool(_pread, fd, start, length)
        else:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            end = start + length
            while start < end:
                chunk = await run_in_threadpool(_pread, fd, start, min(CHUNK, end - start))
                start += len(chunk)
                await send_body(send, chunk, more=start < end)
            return status
    finally:
        os.close(fd)
    return await _finish(send, status, headers, body)


def read_span(path: str, start: int, length: int) -> bytes:
    """``length`` bytes of the file at ``path`` from ``start`` (FileNotFoundError when it is gone)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return _pread(fd, start, length)
    finally:
        os.close(fd)


def _pread(fd: int, start: int, length: int) -> bytes:
    parts = []
    while length > 0:
        chunk = os.pread(fd, length, start)
        if not chunk:
            raise OSError(f"blob shorter than expected at {start}")
        parts.append(chunk)
        start += len(chunk)
        length -= len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


async def _finish(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> int:
    if status != 304 and not any(k == b"content-length" for k, _ in headers):
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send_body(send, body)
    return status


async def send_body(send: Send, body: bytes, *, more: bool = False) -> None:
    """The body messages of an answer (``more``: the answer goes on after ``body``), in pieces of at
    most BODY_PIECE."""
    end = len(body)
    if end <= BODY_PIECE:
        await send({"type": "http.response.body", "body": body, "more_body": more})
        return
    for start in range(0, end, BODY_PIECE):
        await send({"type": "http.response.body", "body": body[start:start + BODY_PIECE],
                    "more_body": more or start + BODY_PIECE < end})


def _header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return b""


def etag_listed(if_none_match: bytes, etag: bytes) -> bool:
    tags = [t.strip() for t in if_none_match.split(b",")]
    return b"*" in tags or etag in tags or b"W/" + etag in tags


def _if_range_holds(if_range: bytes, f: StoredFile) -> bool:
    """Range applies unless If-Range names another version (a strong ETag or the exact date)."""
    return not if_range or if_range == f.etag or if_range == f.last_modified


def _range(value: bytes, size: int) -> tuple[int, int] | tuple[()] | None:
    """(start, length) of one satisfiable byte range; () when unsatisfiable (416); None to ignore
    the header and send the whole file (malformed, another unit, or several ranges)."""
    unit, _, spec = value.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None
    first, dash, last = spec.strip().partition(b"-")
    if not dash or not (first or last) or not all(part.isdigit() for part in (first, last) if part):
        return None
    if not first:  # the last N bytes
        n = int(last)
        return (max(0, size - n), min(n, size)) if n > 0 and size > 0 else ()
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        return ()
    return start, min(end, size - 1) - start + 1
