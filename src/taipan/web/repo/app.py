"""Package serving under /api/repo/[t/<token>/]<channel>[/<subchannel>]/..., for every family.

An ASGI layer in front of the API: package serving is the hot path (every conda client revalidates
every index on every run), so it does not pay for the API's routing and middleware. The first path
segment after the channel says which family answers (a conda subdir, ``simple``, ``src``...); each
family's handler is a function registered in ``HANDLERS``. Index files of every family are served by
one function from the indexer's publications, with ETag/304/HEAD.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from taipan.domain import families
from taipan.domain.permissions import Principal, can_read_channel
from taipan.errors import Forbidden, NotFound, TaipanError, Unauthenticated
from taipan.runtime import Runtime
from taipan.services.publication import Publication
from taipan.web.deps import credentials_of, resolve_principal
from taipan.web.errors import error_response, taipan_error_response
from taipan.web.observability import Metrics, request_id
from taipan.web.repo import conda, cran, files, python, sbom, stored
from taipan.web.repo.common import (
    CACHE_CONTROL,
    ChannelView,
    Head,
    Located,
    channel_cache,
    choose_coding,
    principal_for,
    published_offload,
    send_published,
    vary_headers,
)
from taipan.web.repo.stored import StoredFile, etag_listed, first_values, stored_files
from taipan.web.rsgi import address as rsgi_address
from taipan.web.rsgi import byte_headers, nothing, send_pieces, text_headers

PREFIX = "/api/repo/"


@dataclass(frozen=True)
class FamilyRoutes:
    """How a family answers its paths: ``locate`` maps a path (and the request's scope, for families
    that negotiate the file by its headers) to a published index file (cheap, no I/O: used for the
    in-memory 304 answer too); ``stored`` maps a path to the ckey of a stored file
    that may be answered from memory (cheap, no I/O), None for paths that need ``serve``; ``serve``
    answers everything else."""

    locate: Callable[[list[str], Head], Located | None]
    stored: Callable[[list[str]], str | None]
    serve: Callable[[Request, Runtime, Principal, ChannelView, list[str]], Awaitable[Response]]


HANDLERS: dict[str, FamilyRoutes] = {
    "conda": FamilyRoutes(conda.locate, conda.stored, conda.serve),
    "python": FamilyRoutes(python.locate, python.stored, python.serve),
    "cran": FamilyRoutes(cran.locate, cran.stored, cran.serve),
    **{name: FamilyRoutes(files.locate, files.stored, files.serve)
       for name in ("notebook", "anaconda_env", "anaconda_project", "sbom")},
}


def repo_path_of(path: str) -> str | None:
    """The part of a URL path after /api/repo/, as ``[t/<token>/]<channel>/...``; None otherwise.

    conda moves a channel's ``/t/<token>`` to just after the channel *location*, which is the bare
    host unless ``channel_alias`` is set to ``http://HOST/api/repo``; so it asks for
    ``/t/<token>/api/repo/<channel>/...``. Both spellings serve the same bytes.
    """
    if path.startswith(PREFIX):
        return path[len(PREFIX):]
    if path.startswith("/t/"):
        token, sep, rest = path[3:].partition("/")
        if token and sep and ("/" + rest).startswith(PREFIX):
            return f"t/{token}/{rest[len(PREFIX) - 1:]}"
    return None


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
    # A second segment that no family serves is a subchannel (subchannels may not take those names).
    if len(rest) >= 2 and rest[0] not in families.all_roots():
        channel, rest = f"{channel}/{rest[0]}", rest[1:]
    return token, channel, rest


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


def _routes_for(rest: list[str]) -> FamilyRoutes | None:
    family = families.for_root(rest[0]) if rest else None
    return HANDLERS.get(family.name) if family is not None else None


@dataclass(frozen=True, slots=True)
class Caller:
    """A request whose caller and channel are known without I/O, and who may read the channel."""

    rt: Runtime
    p: Principal
    view: ChannelView
    rest: list[str]
    routes: FamilyRoutes


def cached_caller(rt: Runtime, headers: Mapping[bytes, bytes], repo_path: str) -> Caller | None:
    """Who asks for what, when the credentials and the channel are in memory and the caller may
    fetch from the channel; None sends the request down the full path (which says why not)."""
    try:
        token, path, rest = parse_repo_path(repo_path)
        routes = _routes_for(rest)
        if routes is None:
            return None
        if token is not None:
            kind, value = "token", token
        else:
            x_auth, auth = headers.get(b"x-auth"), headers.get(b"authorization")
            kind, value = credentials_of(x_auth and x_auth.decode("latin-1"), auth and auth.decode("latin-1"))
        p = resolve_principal(rt, None, kind, value, cached_only=True)
    except TaipanError:
        return None
    hit = channel_cache(rt).peek(path)
    if p is None or hit is None or hit[0] is None or access_error(p, hit[0], path) is not None:
        return None
    return Caller(rt, p, hit[0], rest, routes)


def stored_file(query_string: bytes | str, caller: Caller) -> StoredFile | None:
    """What a stored file (package, wheel...) is, when that is in memory too; None sends the request
    down the full path."""
    if query_string:
        return None  # e.g. ?sbom: not the file's bytes
    ckey = caller.routes.stored(caller.rest)
    if ckey is None:
        return None
    return stored_files(caller.rt).peek(caller.rt, caller.view.id, ckey)


@dataclass(slots=True)
class Prepared:
    """The answer to an index file of a publication in one coding, made once per publication: the
    headers of the 304 and of the 200 (but its length), and the body once known to be in memory as
    bytes the publication holds (addressed files are read per request from their shared cache,
    which has its own budget). An offloaded answer's 200 is complete, with an empty body."""

    etag: bytes
    not_modified: tuple[tuple[bytes, bytes], ...]
    ok: tuple[tuple[bytes, bytes], ...]
    offloaded: bool
    # A file of the shared cache (a shard), by its digest: its bytes are not kept here.
    digest: str | None = None
    body: bytes | None = None
    # The same headers as text, for granian's native interface (web/rsgi.py), made on first use.
    text: tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] | None = None

    def headers(self, status: int) -> tuple[tuple[bytes, bytes], ...]:
        """The headers of a 304 or of a 200 (without its length unless offloaded)."""
        return self.not_modified if status == 304 else self.ok

    def text_headers(self, status: int) -> tuple[tuple[str, str], ...]:
        text = self.text
        if text is None:
            text = self.text = (tuple(text_headers(self.not_modified)), tuple(text_headers(self.ok)))
        return text[0] if status == 304 else text[1]


# Accept-Encoding values seen, with what the file offered: the coding chosen (a handful of distinct
# values in practice; forgotten past the bound, since clients choose them).
_CODINGS: dict[tuple[bytes, tuple[str, ...]], str | None] = {}
_PREPARED_PER_PUBLICATION = 4096


def _coding(accept_encoding: bytes | None, offered: tuple[str, ...]) -> str | None:
    if not accept_encoding or not offered:
        return None
    key = (accept_encoding, offered)
    try:
        return _CODINGS[key]
    except KeyError:
        coding = choose_coding(accept_encoding.decode("latin-1"), offered)
        if len(_CODINGS) >= 1024:
            _CODINGS.clear()
        _CODINGS[key] = coding
        return coding


def _prepare(rt: Runtime, pub: Publication, located: Located, offered: tuple[str, ...], coding: str | None,
             public: bool) -> Prepared:
    name = located.name
    etag = pub.etag_for(name, coding).encode()
    answer = ((b"etag", etag), (b"last-modified", pub.last_modified.encode()),
              (b"cache-control", CACHE_CONTROL[public]),
              *((k.lower().encode(), v.encode()) for k, v in vary_headers(located, offered)))
    media = pub.media_type(name)
    if media.startswith("text/") and "charset=" not in media:
        media += "; charset=utf-8"  # as Starlette's Response says it on the full path
    content = ((b"content-type", media.encode()), *(((b"content-encoding", coding.encode()),) if coding else ()))
    # A front server sends a file stored as one blob (offload); else the bytes must be in memory.
    offload = published_offload(rt, pub, name, coding)
    if offload is not None:
        return Prepared(etag, answer, (*answer, *content, offload, (b"content-length", b"0")), True,
                        body=b"")
    return Prepared(etag, answer, (*answer, *content), False,
                    digest=pub.addressed_digest(name, coding) if pub.is_addressed(name) else None)


def from_memory(head: Head, headers: Mapping[bytes, bytes], caller: Caller) -> tuple[int, Prepared, bytes] | None:
    """The answer to a GET or HEAD of an index file when everything needed is already in memory
    (credentials, channel, publication, the file's bytes in the coding asked for): a 304 for a
    matching If-None-Match, else the bytes, or with offload (a file stored as one blob) the header
    by which the front server sends them: the status, the prepared headers (``Prepared.headers``) and
    the body. None sends the request down the full path."""
    inm = headers.get(b"if-none-match")
    if inm is None and b"if-modified-since" in headers:
        return None  # dates are compared on the full path
    located = caller.routes.locate(caller.rest, head)
    if located is None:
        return None
    rt, view = caller.rt, caller.view
    pub = (rt.indexer.documents.peek(view.id, located.name) if located.document
           else rt.indexer.peek(view.id, located.subdir))
    if pub is None:
        return None
    name = located.name
    offered = pub.offered.get(name)
    if offered is None:
        if not pub.has(name):
            return None
        if len(pub.offered) >= _PREPARED_PER_PUBLICATION:
            pub.offered.clear()
        offered = pub.offered[name] = pub.encodings(name)
    answers = pub.answers
    coding = _coding(headers.get(b"accept-encoding"), offered)
    public = view.privacy == "public"
    key = (name, located.headers, coding, public)
    prepared = answers.get(key)
    if prepared is None:
        prepared = _prepare(rt, pub, located, offered, coding, public)
        # Not kept while offload is on and the file may still become offloadable (a large
        # publication's files are stored by its background sharing after it is first served).
        if prepared.offloaded or not rt.settings.server.offload or pub.stored_all and not pub.pending:
            if len(answers) >= _PREPARED_PER_PUBLICATION:
                answers.clear()
            answers[key] = prepared
    if inm is not None and (inm == prepared.etag or etag_listed(inm, prepared.etag)):
        return 304, prepared, b""
    body = prepared.body
    if body is None:
        digest = prepared.digest
        body = pub.ready(name, coding) if digest is None else pub.addressed_ready(digest)
        if body is None:
            return None  # streamed from the blob store, made on first request...: the full path
        if digest is None:
            prepared.body = body  # the publication holds these bytes anyway
    return 200, prepared, body


class FastPath:
    """Package serving's answers that need nothing but memory, ahead of the whole application (no
    routing, middleware, request objects or thread hop): a GET or HEAD of an index file whose bytes
    are in memory (or that a front server sends), every conditional request that matches, and
    stored files whose lookup is cached. Each answer is counted in the metrics and carries a request
    id, as the observability middleware does for everything else. ``__call__`` is False when the
    request must take the full path."""

    def __init__(self, rt: Runtime, metrics: Metrics) -> None:
        self.rt, self.metrics = rt, metrics
        # Sets a scope's client (and scheme) from a trusted front proxy's headers (web/app.py:
        # forwarded), for downloads answered through granian's native interface; None: no proxy is.
        self.forwarded: ASGIApp | None = None

    def _find(self, method: str, path: str, query_string: bytes | str, headers: Mapping[bytes, bytes],
              head: Head) -> tuple[Caller, tuple[int, Prepared, bytes] | None, StoredFile | None] | None:
        if method != "GET" and method != "HEAD":
            return None
        repo_path = repo_path_of(path)
        if repo_path is None:
            return None
        caller = cached_caller(self.rt, headers, repo_path)
        if caller is None:
            return None
        answer = from_memory(head, headers, caller)
        f = stored_file(query_string, caller) if answer is None else None
        return None if answer is None and f is None else (caller, answer, f)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        started = perf_counter()
        method = scope["method"]
        headers = first_values(scope["headers"])
        found = self._find(method, scope["path"], scope["query_string"], headers, Request(scope))
        if found is None:
            return False
        caller, answer, f = found
        rid_header = (b"x-request-id", self.metrics.request_id(headers.get(b"x-request-id")).encode())
        status = 500
        try:
            if answer is not None:
                status, prepared, body = answer
                await send({"type": "http.response.start", "status": status,
                            "headers": [*prepared.headers(status), *_length(prepared, status, body), rid_header]})
                await stored.send_body(send, body if method == "GET" else b"")
            else:
                assert f is not None
                # The request id in logs of what the answer does (reading the blob...), as elsewhere.
                token = request_id.set(rid_header[1].decode())
                try:
                    status = await stored.answer(scope, send, caller.rt, caller.p, caller.view, f, headers,
                                                 (rid_header,))
                finally:
                    request_id.reset(token)
        finally:
            self.metrics.observe_request("repo", method, status, perf_counter() - started)
        return True

    async def rsgi(self, scope: Any, proto: Any) -> bool:
        """The same answers from memory through granian's native interface (web/rsgi.py): a request
        for a stored file, or that this does not answer, returns False for the ASGI path."""
        started = perf_counter()
        method = scope.method
        if method != "GET" and method != "HEAD":
            return False
        headers = _TextHeaders(scope.headers)
        found = self._find(method, scope.path, scope.query_string, headers, _RSGIHead(scope))
        if found is None:
            return False
        caller, answer, f = found
        rid = self.metrics.request_id(headers.get(b"x-request-id"))
        if answer is None:
            assert f is not None
            status = 500
            token = request_id.set(rid)
            try:
                status = await self._rsgi_file(scope, proto, caller, f, headers, rid)
            finally:
                request_id.reset(token)
                self.metrics.observe_request("repo", method, status, perf_counter() - started)
            return True
        status, prepared, body = answer
        try:
            answer = [*prepared.text_headers(status), ("x-request-id", rid)]
            if status == 200 and not prepared.offloaded:
                answer.append(("content-length", str(len(body))))
            if method == "HEAD" or len(body) <= stored.BODY_PIECE:
                proto.response_bytes(status, answer, body if method == "GET" else b"")
            else:
                await send_pieces(proto.response_stream(status, answer), body, stored.BODY_PIECE)
        except Exception:
            status = 500
            raise
        finally:
            self.metrics.observe_request("repo", method, status, perf_counter() - started)
        return True


    async def _rsgi_file(self, scope: Any, proto: Any, caller: Caller, f: StoredFile, headers: _TextHeaders,
                         rid: str) -> int:
        client = rsgi_address(scope.client)
        if self.forwarded is not None:  # the client a trusted front proxy names, as on the ASGI path
            forwarding = {"type": "http", "client": client, "scheme": scope.scheme,
                          "headers": byte_headers((k, v) for k, v in scope.headers.items()
                                                  if k == "x-forwarded-for" or k == "x-forwarded-proto")}
            await self.forwarded(forwarding, nothing, nothing)
            client = forwarding["client"]
        a = stored.plan(scope.method, headers, client, caller.rt, caller.p, caller.view, f,
                        ((b"x-request-id", rid.encode()),))
        body = a.body
        if a.path is not None and not a.whole:
            # A small span is read here, as on the ASGI path: granian's own reading of a span
            # costs more per request (benchmarks/README.md, Fixed per-request cost).
            try:
                body = stored.read_span(a.path, a.start, a.length) if a.length <= stored.PREAD_LIMIT else None
            except FileNotFoundError:
                a = stored.blob_missing(a.headers)
                body = a.body
            if body is not None:
                a.path = None
        text = text_headers(a.headers)
        if a.path is None:
            proto.response_bytes(a.status, text, body)
        elif a.whole:
            proto.response_file(a.status, text, a.path)
        else:
            proto.response_file_range(a.status, text, a.path, a.start, a.start + a.length)
        return a.status


def _length(prepared: Prepared, status: int, body: bytes) -> tuple[tuple[bytes, bytes], ...]:
    if status != 200 or prepared.offloaded:
        return ()
    return ((b"content-length", str(len(body)).encode()),)


class _TextHeaders:
    """granian's request headers (text, by lower-case name) looked up as an ASGI scope's are."""

    __slots__ = ("text",)

    def __init__(self, text: Any) -> None:
        self.text = text

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        value = self.text.get(name.decode("latin-1"))
        return default if value is None else value.encode("latin-1")

    def __contains__(self, name: object) -> bool:
        return isinstance(name, bytes) and name.decode("latin-1") in self.text


class _RSGIHead:
    """What a family's ``locate`` reads of a request (headers, query parameters), from granian's scope."""

    __slots__ = ("scope", "_query")

    def __init__(self, scope: Any) -> None:
        self.scope = scope
        self._query: QueryParams | None = None

    @property
    def headers(self) -> Any:
        return self.scope.headers

    @property
    def query_params(self) -> QueryParams:
        if self._query is None:
            self._query = QueryParams(self.scope.query_string)
        return self._query


class RepoApp:
    """ASGI middleware that answers /api/repo/ itself, ahead of the API's routing and middleware
    (what ``FastPath`` did not answer from memory)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        repo_path = repo_path_of(scope["path"]) if scope["type"] == "http" else None
        if repo_path is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if scope["method"] == "POST":
            # Uploads to a channel URL (twine, the documented form post) are API routes.
            await self.app(_upload_scope(scope, repo_path), receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            response: Response = error_response(405, "method_not_allowed", "Package URLs are read-only",
                                                "Use GET or HEAD to download; POST a file to upload",
                                                {"Allow": "GET, HEAD, POST"})
        else:
            try:
                response = await serve(request, repo_path)
            except TaipanError as exc:
                response = taipan_error_response(exc)
        await response(scope, receive, send)


def _upload_scope(scope: Scope, repo_path: str) -> Scope:
    """The scope of an upload to a channel URL, as the API's /api/repo/<channel> route expects it:
    a token in the path becomes an X-Auth header (taking precedence over other credentials)."""
    if not repo_path.startswith("t/"):
        return {**scope, "path": PREFIX + repo_path, "raw_path": (PREFIX + repo_path).encode()}
    token, _, rest = repo_path[2:].partition("/")
    headers = [(k, v) for k, v in scope["headers"] if k not in (b"x-auth", b"authorization")]
    path = PREFIX + rest
    return {**scope, "path": path, "raw_path": path.encode(), "headers": [*headers, (b"x-auth", token.encode())]}


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
    if rest == [] or rest == [""]:
        return Response(json.dumps({"channel": view.path, "subdirs": "see channeldata.json"}),
                        media_type="application/json")
    routes = _routes_for(rest)
    if routes is None and len(rest) == 1 and "sbom" in request.query_params:
        # conda-repo-cli's `sbom --package ...` sends the bare file name where the ckey goes.
        return await run_in_threadpool(sbom.respond_for_filename, request, rt, view.id, view.path, rest[0])
    if routes is None:
        raise NotFound(f"Nothing at {request.url.path}",
                       "Conda subdirs are platform names such as noarch or linux-64", code="not_found")
    located = routes.locate(rest, request)
    if located is not None and not located.document:
        return await published(request, rt, view, located)
    return await routes.serve(request, rt, p, view, rest)


async def published(request: Request, rt: Runtime, view: ChannelView, located: Located) -> Response:
    """One file of a partition's current publication, with ETag/304 and HEAD."""
    pub: Publication = rt.indexer.peek(view.id, located.subdir) or await run_in_threadpool(
        rt.indexer.publication, view.id, located.subdir, family=located.family)
    return await send_published(request, view, pub, located)


# The URLs of a channel that both serve (GET/HEAD, answered by RepoApp before any routing) and take
# uploads (POST, an API route): the API schema lists GET for them too, so that it names every
# method these URLs allow. Files and indexes below them are package serving, not JSON API.
SERVED_UPLOAD_PATHS = ("/api/repo/{ch}", "/api/repo/{ch}/", "/api/repo/{ch}/{sub}", "/api/repo/{ch}/{sub}/")


def document(app: Any) -> None:
    """Add the GET side of SERVED_UPLOAD_PATHS to the app's schema (the handlers never run)."""
    def served() -> None:
        raise NotFound("Served by package serving", "", code="not_found")  # pragma: no cover

    # The last segment may also name a file of the channel, or a family's root (e.g. PyPI's simple/).
    any_segment = {"parameters": [{"name": "sub", "in": "path", "required": True,
                                   "description": "A subchannel, or a file or family root of the channel",
                                   "schema": {"type": "string", "pattern": "^[^/]+$"}}]}
    for path in SERVED_UPLOAD_PATHS:
        app.add_api_route(path, served, methods=["GET"], tags=["packages"], summary="A channel's root",
                          openapi_extra=any_segment if "{sub}" in path else None,
                          description="What the channel (or subchannel) holds: its name and where to find "
                          "its index (a trailing slash names the channel; without it, the last segment "
                          "is a file). Conditional requests are answered 304.",
                          responses={200: {"description": "The channel, or what the family serves there",
                                           "content": {"application/json": {"schema": {"type": "object"}},
                                                       "*/*": {"schema": {}}}},
                                     304: {"description": "Not modified"}})
