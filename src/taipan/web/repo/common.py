"""Shared pieces of package serving: credentials from the URL or headers, channel lookup with a
short cache, and conditional-request handling on prepared bytes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from taipan.db.models import File
from taipan.domain.permissions import Principal
from taipan.errors import NotFound
from taipan.runtime import Runtime
from taipan.services import channels as channel_service
from taipan.services import serving
from taipan.services.publication import Publication, body_size
from taipan.storage.bell import Bell
from taipan.web.deps import client_address, credentials, resolve_principal
from taipan.web.repo import sbom, stored

CHANNEL_TTL = 1.0


class Lookup(Protocol):
    def get(self, key: str, /) -> Any: ...


class Head(Protocol):
    """What a family's ``locate`` may read of a request: its headers and query parameters by name
    (a Starlette ``Request``, or granian's scope on its native interface)."""

    @property
    def headers(self) -> Lookup: ...

    @property
    def query_params(self) -> Lookup: ...


@dataclass(frozen=True)
class Located:
    """A URL that names a file of a partition's publication (family, partition, file name), or with
    ``document`` a channel document (``Indexer.documents``, e.g. conda's channeldata.json; no
    partition), which the family's ``serve`` makes on the full path."""

    family: str
    subdir: str
    name: str
    headers: tuple[tuple[str, str], ...] = ()
    missing_code: str = "not_found"
    missing_hint: str = "Check the URL"
    document: bool = False


@dataclass(frozen=True)
class ChannelView:
    id: str
    path: str
    privacy: str
    frozen: bool
    owner_ids: frozenset[str]


class ChannelCache:
    """path -> ChannelView for CHANNEL_TTL, and no longer than the channel's change bell is silent (a
    process of this machine changed or deleted the channel: ``storage/bell.py``): serving answers
    without a query per request. That no channel has a path is kept the same way, under the bell
    slot of the path, which is rung where a path comes to name a channel (created, renamed to it:
    ``indexing.ring_path_after_commit``), so a channel made by any process of this machine is found
    at once. The views of channels asked for recently are looked up again ahead of need by
    ``keep_fresh``."""

    def __init__(self, bell: Bell) -> None:
        self._rung = bell.values
        # path -> (deadline, view or None: no such channel, the channel's bell slot (of its id; of
        # the path when there is none, rung when a channel gets that path), the slot's value read
        # before the lookup)
        self._items: dict[str, tuple[float, ChannelView | None, int, int]] = {}
        self._used: dict[str, float] = {}  # path -> when it was last asked for (time.monotonic())
        self._lock = threading.Lock()
        self._generation = 0  # moved by clear: a lookup begun before must not be kept
        self.used = float("-inf")  # when any channel was last asked for

    def peek(self, path: str) -> tuple[ChannelView | None] | None:
        """The cached view (possibly None = no such channel) while fresh; None when a lookup is due."""
        hit = self._items.get(path)
        if hit is None:
            return None
        now = self.used = self._used[path] = time.monotonic()
        return (hit[1],) if hit[0] > now and self._rung[hit[2]] == hit[3] else None

    def get(self, rt: Runtime, path: str) -> ChannelView | None:
        hit = self._items.get(path)
        now = self.used = self._used[path] = time.monotonic()
        if hit and hit[0] > now and self._rung[hit[2]] == hit[3]:
            return hit[1]
        return self._lookup(rt, [path]).get(path)

    def keep_fresh(self, rt: Runtime, used_since: float, age: float) -> set[str]:
        """Look up again, in one go, the channels asked for since ``used_since`` whose view is
        ``age`` seconds old (less than CHANNEL_TTL), so that requests keep finding them current.
        Returns the ids of those channels that are served (whose publications may be kept fresh
        too; a frozen channel's as well: its index is refreshed like any other's). Called by the
        serving process's refresher (web.keep_fresh)."""
        now = time.monotonic()
        used = []
        with self._lock:
            for path, when in self._used.copy().items():  # requests add to it without the lock
                if when < used_since:
                    self._used.pop(path, None)
                else:
                    used.append(path)
        due, served = [], set()
        for path in used:
            hit = self._items.get(path)
            # Only existing channels: a name that was asked for in vain is looked up by its next request.
            if hit is None or hit[1] is None:
                continue
            if hit[0] - CHANNEL_TTL + age <= now or self._rung[hit[2]] != hit[3]:
                due.append(path)
            else:
                served.add(hit[1].id)
        for view in self._lookup(rt, due).values():
            if view is not None:
                served.add(view.id)
        return served

    def _lookup(self, rt: Runtime, paths: list[str]) -> dict[str, ChannelView | None]:
        """The views of channels by path, from the database (a few queries for all of them), kept
        unless ``clear`` was called meanwhile."""
        if not paths:
            return {}
        generation = self._generation
        rung = self._rung.tolist()  # before the lookup: a change meanwhile makes the view due
        views: dict[str, ChannelView | None] = dict.fromkeys(paths)
        with rt.sessions() as db:
            for ch in channel_service.find_channels(db, paths):
                # The effective privacy: a subchannel is served no more widely than its parent.
                views[ch.path] = ChannelView(ch.id, ch.path, channel_service.effective_privacy(ch), ch.frozen,
                                             frozenset(channel_service.owner_ids(ch)))
        with self._lock:
            if generation == self._generation:
                if len(self._items) > 10000:
                    self._items.clear()
                    self._used.clear()
                deadline = time.monotonic() + CHANNEL_TTL
                for path, view in views.items():
                    slot = Bell.slot(path if view is None else view.id)
                    self._items[path] = (deadline, view, slot, rung[slot])
        return views

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used.clear()
            self._generation += 1


def channel_cache(rt: Runtime) -> ChannelCache:
    cache = rt.extras.get("channel_cache")  # made once: this runs on every request
    return cache if cache is not None else rt.extras.setdefault("channel_cache", ChannelCache(rt.indexer.bell))


CACHE_CONTROL = {True: b"public, max-age=0, must-revalidate", False: b"private, max-age=0, must-revalidate"}


def principal_for(rt: Runtime, request: Request, url_token: str | None, *,
                  cached_only: bool = False) -> Principal | None:
    """The caller, from /t/<token>/ or the headers; with cached_only, None unless no I/O is needed.
    Revoked and expired credentials stop working at once (see web.deps.PrincipalCache)."""
    kind, value = ("token", url_token) if url_token is not None else credentials(request)
    return resolve_principal(rt, None, kind, value, addr=client_address(request), cached_only=cached_only)


def choose_coding(accept_encoding: str | None, offered: tuple[str, ...]) -> str | None:
    """The content coding to send, from the client's Accept-Encoding and what is offered (best
    first); None for identity. A coding with q=0 is refused; ``*`` accepts any."""
    if not accept_encoding or not offered:
        return None
    accepted: dict[str, float] = {}
    for part in accept_encoding.lower().split(","):
        token, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if token:
            accepted[token.strip()] = q
    for coding in offered:
        if accepted.get(coding, accepted.get("*", 0.0)) > 0:
            return coding
    return None


def etag_matches(if_none_match: str, etag: str) -> bool:
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def not_modified(request: Request, etag: str, last_modified: str) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            return parsedate_to_datetime(ims) >= parsedate_to_datetime(last_modified)
        except (TypeError, ValueError):
            return False
    return False


def _validators(request: Request, etag: str, last_modified: str, public: bool,
                extra_headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], Response | None]:
    """The headers of an index answer, and the 304 when the client's copy is current."""
    headers = {"ETag": etag, "Last-Modified": last_modified, "Cache-Control": CACHE_CONTROL[public].decode(),
               **dict(extra_headers)}
    return headers, (Response(status_code=304, headers=headers) if not_modified(request, etag, last_modified)
                     else None)


def bytes_response(request: Request, data: bytes, etag: str, last_modified: str, media_type: str,
                   public: bool, extra_headers: Iterable[tuple[str, str]] = ()) -> Response:
    headers, unchanged = _validators(request, etag, last_modified, public, extra_headers)
    return unchanged or Response(data, media_type=media_type, headers=headers)


def vary_headers(located: Located, offered: tuple[str, ...]) -> list[tuple[str, str]]:
    """The headers a located file adds to its answer, with one Vary naming every request header the
    answer depends on (Accept-Encoding too when the file is offered in other codings)."""
    vary = [v for k, v in located.headers if k.lower() == "vary"]
    if offered:
        vary.append("Accept-Encoding")
    return [*(("Vary", ", ".join(vary)),) * bool(vary), *((k, v) for k, v in located.headers if k.lower() != "vary")]


async def send_published(request: Request, view: ChannelView, pub: Publication, located: Located) -> Response:
    """One file of a publication (an index file of any family, or a channel document), with ETag/304,
    HEAD and the content codings the publication offers for it."""
    if not pub.has(located.name):
        raise NotFound(f"No {located.name} in {view.path}/{located.subdir}", located.missing_hint,
                       code=located.missing_code)
    offered = pub.encodings(located.name)
    coding = choose_coding(request.headers.get("accept-encoding"), offered)
    headers = vary_headers(located, offered)
    if coding is not None:
        headers.append(("Content-Encoding", coding))
    etag, media_type = pub.etag_for(located.name, coding), pub.media_type(located.name)
    public = view.privacy == "public"
    offload = published_offload(request.app.state.runtime, pub, located.name, coding)
    if offload is not None and not not_modified(request, etag, pub.last_modified):
        headers.append((offload[0].decode(), offload[1].decode()))  # the front server sends it
        return bytes_response(request, b"", etag, pub.last_modified, media_type, public, extra_headers=headers)
    body = pub.encoded(located.name, coding) if pub.is_ready(located.name, coding) else await run_in_threadpool(
        pub.encoded, located.name, coding)
    if isinstance(body, bytes):
        return bytes_response(request, body, etag, pub.last_modified, media_type, public, extra_headers=headers)
    return stream_response(request, lambda: pub.stream(body), body_size(body), etag, pub.last_modified,
                           media_type, public, extra_headers=headers)


def stream_response(request: Request, chunks: Callable[[], Iterator[bytes]], size: int, etag: str,
                    last_modified: str, media_type: str, public: bool,
                    extra_headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Like ``bytes_response``, for a body streamed from the blob store (``size`` bytes)."""
    headers, unchanged = _validators(request, etag, last_modified, public, extra_headers)
    if unchanged is not None:
        return unchanged
    headers["Content-Length"] = str(size)
    if request.method == "HEAD":
        return Response(b"", media_type=media_type, headers=headers)
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


def published_offload(rt: Runtime, pub: Publication, name: str, coding: str | None) -> tuple[bytes, bytes] | None:
    """The offload header for a file of a publication that is stored as one blob, exactly as sent
    (so a front server sends index files too); None when offload is off or the file is not."""
    sha = pub.blob(name, coding) if rt.settings.server.offload else None
    path = rt.blobs.local_path(sha) if sha is not None else None
    return stored.offload_header(rt, path) if path is not None else None


def record_download(rt: Runtime, request: Request, p: Principal, view: ChannelView, f: File) -> None:
    stored.record_download(rt, request.scope, p, view, stored.file_identity(f))


def send_stored_file(request: Request, rt: Runtime, p: Principal, view: ChannelView, ckey: str,
                     index: tuple[str, str] | None = None) -> Response:
    """A stored artifact file by ckey: immutable, Range-capable; a download is recorded once (a
    resumed or partial transfer, Range not starting at 0, does not count). ``index`` is the (family,
    partition) whose publication lists the file, None for families without an index: what the file
    is is then remembered as long as that index is current (see stored.py). Runs in a thread."""
    if "sbom" in request.query_params:
        # conda-repo-cli's `sbom --ckey` asks the package URL for its SBOM; never the package itself.
        return sbom.respond(request, rt, view.id, view.path, ckey)
    # The publication is looked at before the database: a file removed after this look moves the
    # log past it, so an entry made now cannot outlive the removal's publication.
    cache = stored.stored_files(rt)
    rung = cache.rung(view.id)  # before the lookups: a change meanwhile makes the entry due
    pub = None if index is None else stored.current_publication(rt, view.id, index)
    known = cache.get(view.id, ckey, pub)
    if known is None and index is not None and pub is not None:
        cache.fill(rt, view.id, index, pub)  # the partition's other files are likely asked for next
        known = cache.get(view.id, ckey, pub)
    if known is not None:
        return stored.StoredFileResponse(rt, p, view, known)
    f = serving.find_file(rt.sessions, view.id, ckey)
    filename = ckey.rsplit("/", 1)[-1]
    if f.state != "active":
        fetch = rt.extras.get("passive_fetch")
        if fetch is None:
            raise NotFound(f"{filename} is not available yet", "Ask an admin to run the mirror",
                           code="file_not_available")
        return fetch(request, rt, p, view, f)
    path = rt.blobs.local_path(f.sha256)
    presign = getattr(rt.blobs, "presigned_url", None)
    if path is None and presign is not None:
        # An object store sends the bytes itself: the client follows a short-lived signed URL.
        if request.method == "GET" and request.headers.get("range", "bytes=0-").startswith("bytes=0-"):
            record_download(rt, request, p, view, f)
        return Response(status_code=307, headers={"ETag": f'"{f.sha256}"', "Cache-Control": "no-store",
                                                  "Location": presign(f.sha256, filename=filename)})
    if path is None or not path.exists():
        raise NotFound(f"The stored file for {filename} is missing", "Ask an admin to check the blob store",
                       code="blob_missing")
    found = stored.StoredFile.of(rt, f, path)
    if index is None or pub is not None:
        cache.put(view.id, found, pub, rung)
    return stored.StoredFileResponse(rt, p, view, found)
