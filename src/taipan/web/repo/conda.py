"""Conda channel serving under /api/repo/[t/<token>/]<channel>[/<subchannel>]/<subdir>/<file>.

Index files are answered from the indexer's prepared bytes (no per-request storage or JSON work);
package files are sent from the blob store with Range support, and each download is recorded.
"""

from __future__ import annotations

import hashlib
import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from taipan.domain.names import SUBDIR_SET
from taipan.domain.permissions import Principal, can_read_channel
from taipan.errors import Forbidden, NotFound, TaipanError, Unauthenticated
from taipan.runtime import Runtime
from taipan.services import serving
from taipan.services.indexing import Publication
from taipan.web.errors import error_response, taipan_error_response
from taipan.web.repo.common import (
    CACHE_CONTROL,
    ChannelView,
    bytes_response,
    channel_cache,
    etag_matches,
    principal_for,
    record_download,
)

INDEX_FILES = {
    "repodata.json": "application/json",
    "repodata.json.zst": "application/zstd",
    "repodata.json.bz2": "application/x-bzip2",
    "current_repodata.json": "application/json",
    "current_repodata.json.zst": "application/zstd",
    "repodata_shards.msgpack.zst": "application/octet-stream",
}


def parse_repo_path(path: str) -> tuple[str | None, str, list[str]]:
    """'t/TOK/ch/sub/linux-64/x' -> ('TOK', 'ch/sub', ['linux-64', 'x'])."""
    parts = path.split("/")
    token = None
    if len(parts) >= 2 and parts[0] == "t":
        token, parts = parts[1], parts[2:]
    if not parts or not parts[0]:
        raise NotFound("No channel in the URL", "Use /api/repo/<channel>/<subdir>/repodata.json",
                       code="channel_not_found")
    channel = parts[0]
    rest = parts[1:]
    if len(rest) >= 2 and rest[0] not in SUBDIR_SET:
        channel, rest = f"{channel}/{rest[0]}", rest[1:]
    return token, channel, rest


def repo_path_of(path: str) -> str | None:
    """The part of a URL path after /api/repo/, as ``[t/<token>/]<channel>/...``; None otherwise.

    conda moves a channel's ``/t/<token>`` to just after the channel *location*, which is the bare
    host unless ``channel_alias`` is set to ``http://HOST/api/repo``; so it asks for
    ``/t/<token>/api/repo/<channel>/...``. Both spellings serve the same bytes.
    """
    if path.startswith(RepoApp.PREFIX):
        return path[len(RepoApp.PREFIX):]
    if path.startswith("/t/"):
        token, sep, rest = path[3:].partition("/")
        if token and sep and ("/" + rest).startswith(RepoApp.PREFIX):
            return f"t/{token}/{rest[len(RepoApp.PREFIX) - 1:]}"
    return None


def access_error(p: Principal, ch: ChannelView | None, path: str) -> TaipanError | None:
    """Why ``p`` may not fetch from the channel, or None when it may.

    A channel the caller may not read is answered exactly like a missing one, so that answers do
    not reveal which channels exist: 401 with WWW-Authenticate for anonymous callers (pip, conda
    and R only send credentials after a 401), 404 for everyone else.
    """
    if ch is None or not can_read_channel(p, ch.privacy, ch.owner_ids):
        if not p.authenticated:
            return Unauthenticated(f"Channel {path!r} does not exist or requires authentication",
                                   "Add /t/<token>/ to the channel URL or send an X-Auth header",
                                   code="authentication_required")
        return NotFound(f"Channel {path!r} does not exist", "Check the channel name", code="channel_not_found")
    if p.authenticated and not p.has_scope("artifact:download"):
        return Forbidden("Your token does not have the 'artifact:download' scope",
                         "Create a token with artifact:download", code="insufficient_scope")
    return None


def check_access(p: Principal, ch: ChannelView | None, path: str) -> ChannelView:
    error = access_error(p, ch, path)
    if error is not None:
        raise error
    assert ch is not None
    return ch


def revalidated(request: Request, repo_path: str) -> list[tuple[bytes, bytes]] | None:
    """The 304 headers for a conditional GET of an index file, when everything needed is already
    in memory (credentials, channel, publication); None sends the request down the full path."""
    inm = request.headers.get("if-none-match")
    if not inm:
        return None
    try:
        token, path, rest = parse_repo_path(repo_path)
    except TaipanError:
        return None
    if len(rest) != 2 or rest[1] not in INDEX_FILES:
        return None
    rt: Runtime = request.app.state.runtime
    p = principal_for(rt, request, token, cached_only=True)
    hit = channel_cache(rt).peek(path)
    if p is None or hit is None or access_error(p, hit[0], path) is not None:
        return None
    view = hit[0]
    assert view is not None
    pub = rt.indexer.peek(view.id, rest[0], frozen=view.frozen)
    if pub is None or not etag_matches(inm, etag := pub.etag(rest[1].replace(".", "-"))):
        return None
    return [(b"etag", etag.encode()), (b"last-modified", pub.last_modified.encode()),
            (b"cache-control", CACHE_CONTROL[view.privacy == "public"])]


class RepoApp:
    """ASGI middleware that answers /api/repo/ itself, ahead of the API's routing and middleware:
    package serving is the hot path (every conda client revalidates every index on every run)."""

    PREFIX = "/api/repo/"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        repo_path = repo_path_of(scope["path"]) if scope["type"] == "http" else None
        if repo_path is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if scope["method"] in ("GET", "HEAD") and (headers := revalidated(request, repo_path)):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["method"] not in ("GET", "HEAD"):
            response: Response = error_response(405, "method_not_allowed", "Package URLs are read-only",
                                                "Use GET or HEAD; upload through /api/channels/...")
        else:
            try:
                response = await serve(request, repo_path)
            except TaipanError as exc:
                response = taipan_error_response(exc)
        await response(scope, receive, send)


async def serve(request: Request, repo_path: str) -> Response:
    rt: Runtime = request.app.state.runtime
    token, path, rest = parse_repo_path(repo_path)
    # A cache miss means a database lookup (and argon2 for passwords): not on the event loop.
    p = principal_for(rt, request, token, cached_only=True) or await run_in_threadpool(
        principal_for, rt, request, token)
    assert p is not None
    cache = channel_cache(rt)
    hit = cache.peek(path)
    view = check_access(p, hit[0] if hit else await run_in_threadpool(cache.get, rt, path), path)
    public = view.privacy == "public"
    if rest == [] or rest == [""]:
        return Response(json.dumps({"channel": view.path, "subdirs": "see channeldata.json"}),
                        media_type="application/json")
    if rest == ["channeldata.json"]:
        data = await run_in_threadpool(serving.channeldata, rt.sessions, view.id, view.path)
        etag = '"' + hashlib.sha256(data).hexdigest()[:24] + '"'
        return bytes_response(request, data, etag, serving.http_now(), "application/json", public)
    if len(rest) < 2 or rest[0] not in SUBDIR_SET:
        raise NotFound(f"Nothing at {request.url.path}",
                       "Subdirs are platform names such as noarch or linux-64", code="not_found")
    subdir, name = rest[0], "/".join(rest[1:])
    if name in INDEX_FILES or name.startswith("shards/"):
        publication = rt.indexer.peek(view.id, subdir, frozen=view.frozen) or await run_in_threadpool(
            rt.indexer.publication, view.id, subdir, frozen=view.frozen)
        return await _index_file(request, publication, name, public)
    if "sbom" in request.query_params:
        # conda-repo-cli's `sbom --ckey` asks the package URL for its SBOM. None are produced yet:
        # say so, and never send (or count as a download) the package itself.
        raise NotFound(f"No SBOM available for {subdir}/{name}",
                       "Download the package itself without ?sbom=; SBOMs are not produced by this server yet",
                       code="sbom_not_found")
    return await run_in_threadpool(_package, request, rt, p, view, subdir, name)


async def _index_file(request: Request, pub: Publication, name: str, public: bool) -> Response:
    if name.startswith("shards/"):
        digest = name[len("shards/"):].removesuffix(".msgpack.zst")
        data = pub.shards.get(digest)
        if data is None:
            raise NotFound(f"No shard {digest[:16]}...", "Fetch repodata_shards.msgpack.zst again",
                           code="shard_not_found")
        return bytes_response(request, data, f'"{digest[:32]}"', pub.last_modified,
                              "application/octet-stream", public)
    builders = {
        "repodata.json": lambda: pub.repodata, "repodata.json.zst": lambda: pub.zst,
        "repodata_shards.msgpack.zst": lambda: pub.shard_index,
        "repodata.json.bz2": pub.bz2, "current_repodata.json": pub.current_repodata,
        "current_repodata.json.zst": pub.current_zst,
    }
    etag = pub.etag(name.replace(".", "-"))
    build = builders[name]
    cheap = name in ("repodata.json", "repodata.json.zst", "repodata_shards.msgpack.zst")
    data = build() if cheap else await run_in_threadpool(build)
    return bytes_response(request, data, etag, pub.last_modified, INDEX_FILES[name], public)


def _package(request: Request, rt: Runtime, p: Principal, view: ChannelView, subdir: str,
             filename: str) -> Response:
    f = serving.find_file(rt.sessions, view.id, f"{subdir}/{filename}")
    headers = {"ETag": f'"{f.sha256}"', "Cache-Control": ("public" if view.privacy == "public"
                                                          else "private") + ", max-age=31536000, immutable"}
    if f.state != "active":
        fetch = rt.extras.get("passive_fetch")
        if fetch is None:
            raise NotFound(f"{filename} is not available yet", "Ask an admin to run the mirror",
                           code="file_not_available")
        return fetch(request, rt, p, view, f)
    path = rt.blobs.local_path(f.sha256)
    if path is None or not path.exists():
        raise NotFound(f"The stored file for {filename} is missing", "Ask an admin to check the blob store",
                       code="blob_missing")
    # A download counts once: resumed or partial transfers (Range not starting at 0) do not.
    if request.method == "GET" and request.headers.get("range", "bytes=0-").startswith("bytes=0-"):
        record_download(rt, request, p, view, f)
    return FileResponse(path, headers=headers, media_type="application/octet-stream",
                        filename=None, stat_result=None)
