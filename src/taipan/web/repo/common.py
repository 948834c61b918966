"""Shared pieces of package serving: credentials from the URL or headers, channel lookup with a
short cache, and conditional-request handling on prepared bytes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from starlette.requests import Request
from starlette.responses import Response

from taipan.db.models import File
from taipan.domain.permissions import Principal
from taipan.runtime import Runtime
from taipan.services import channels as channel_service
from taipan.web.deps import credentials, resolve_principal

CHANNEL_TTL = 1.0


@dataclass(frozen=True)
class ChannelView:
    id: str
    path: str
    privacy: str
    frozen: bool
    owner_ids: frozenset[str]


class ChannelCache:
    """path -> ChannelView for a second: serving answers without a query per request."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, ChannelView | None]] = {}
        self._lock = threading.Lock()

    def peek(self, path: str) -> tuple[ChannelView | None] | None:
        """The cached view (possibly None = no such channel) while fresh; None when a lookup is due."""
        hit = self._items.get(path)
        return (hit[1],) if hit and hit[0] > time.monotonic() else None

    def get(self, rt: Runtime, path: str) -> ChannelView | None:
        hit = self._items.get(path)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        with rt.sessions() as db:
            ch = channel_service.find_channel(db, path)
            # The effective privacy: a subchannel is served no more widely than its parent.
            view = None if ch is None else ChannelView(ch.id, ch.path, channel_service.effective_privacy(ch),
                                                       ch.frozen, frozenset(channel_service.owner_ids(ch)))
        with self._lock:
            if len(self._items) > 10000:
                self._items.clear()
            self._items[path] = (time.monotonic() + CHANNEL_TTL, view)
        return view

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def channel_cache(rt: Runtime) -> ChannelCache:
    return rt.extras.setdefault("channel_cache", ChannelCache())


CACHE_CONTROL = {True: b"public, max-age=0, must-revalidate", False: b"private, max-age=0, must-revalidate"}


def principal_for(rt: Runtime, request: Request, url_token: str | None, *,
                  cached_only: bool = False) -> Principal | None:
    """The caller, from /t/<token>/ or the headers; with cached_only, None unless no I/O is needed."""
    kind, value = ("token", url_token) if url_token is not None else credentials(request)
    return resolve_principal(rt, None, kind, value, cached_only=cached_only)


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


def bytes_response(request: Request, data: bytes, etag: str, last_modified: str, media_type: str,
                   public: bool) -> Response:
    headers = {"ETag": etag, "Last-Modified": last_modified, "Cache-Control": CACHE_CONTROL[public].decode()}
    if not_modified(request, etag, last_modified):
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def record_download(rt: Runtime, request: Request, p: Principal, view: ChannelView, f: File) -> None:
    client = request.client
    rt.downloads.record(
        channel_id=view.id, channel_path=view.path, file_id=f.id, family=f.family, package=f.name,
        version=f.version, ckey=f.ckey, user_id=p.user_id, username=p.username, token_id=p.token_id,
        remote_addr=client.host if client else None,
        user_agent=(request.headers.get("user-agent") or "")[:300] or None)
