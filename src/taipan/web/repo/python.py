"""Python serving: /api/repo/[t/<token>/]<channel>[/<subchannel>]/simple/...

- ``simple/`` and ``simple/<project>/``: PEP 503 HTML or PEP 691 JSON (chosen from ``Accept`` or
  ``?format=``; HTML by default), prepared bytes from the indexer's publication of the channel's
  ``simple`` partition (see app.published), so ETag/304/HEAD and compression come from there.
- other spellings of a project name, and pages asked for without their trailing slash, are
  redirected to the normalized URL (PEP 503), so that relative file links resolve;
- ``simple/<project>/<file>``: the stored wheel or sdist (Range, download recorded);
- ``simple/<project>/<file>.metadata``: its core metadata (PEP 658/714).
"""

from __future__ import annotations

import hashlib

from packaging.utils import canonicalize_name
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from taipan.domain.families.python import PARTITION
from taipan.domain.permissions import Principal
from taipan.errors import NotFound
from taipan.runtime import Runtime
from taipan.services import serving
from taipan.web.repo.common import ChannelView, Head, Located, bytes_response, send_stored_file

JSON_TYPES = ("application/vnd.pypi.simple.v1+json", "application/vnd.pypi.simple.latest+json")
HTML_TYPES = ("application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "text/html")
VARY = (("Vary", "Accept"),)


def wants_json(request: Head) -> bool:
    """PEP 691 content negotiation: the highest-q type we serve wins; ties keep the client's order;
    HTML when nothing (or nothing we know) is asked for."""
    fmt = request.query_params.get("format")
    accept = fmt if fmt else request.headers.get("accept")
    if not accept:
        return False
    best: tuple[float, int, bool] | None = None
    for i, part in enumerate(accept.split(",")):
        media, _, params = part.strip().partition(";")
        media = media.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if media in JSON_TYPES:
            is_json = True
        elif media in HTML_TYPES or media in ("*/*", "text/*"):
            is_json = False
        else:
            continue
        if best is None or q > best[0]:
            best = (q, i, is_json)
    return bool(best and best[2])


def _page(request: Head) -> str:
    return "index.json" if wants_json(request) else "index.html"


def locate(rest: list[str], head: Head) -> Located | None:
    if rest == [PARTITION, ""]:
        return Located("python", PARTITION, _page(head), headers=VARY)
    if len(rest) == 3 and rest[0] == PARTITION and rest[2] == "" and rest[1] and \
            canonicalize_name(rest[1]) == rest[1]:
        return Located("python", PARTITION, f"{rest[1]}/{_page(head)}", headers=VARY,
                       missing_code="project_not_found",
                       missing_hint="Check the project name; upload it with twine or conda-repo upload")
    return None


def stored(rest: list[str]) -> str | None:
    """The ckey of a distribution's URL (only the normalized spelling is ever remembered)."""
    if len(rest) != 3 or rest[0] != PARTITION or not rest[1] or not rest[2] or rest[2].endswith(".metadata"):
        return None
    return "/".join(rest)


def _redirect(request: Request, rest: list[str], target: list[str]) -> Response:
    path = request.url.path
    base = path[:len(path) - len("/".join(rest))]
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(base + "/".join(target) + query, status_code=301)


async def serve(request: Request, rt: Runtime, p: Principal, view: ChannelView, rest: list[str]) -> Response:
    if rest == [PARTITION]:
        return _redirect(request, rest, [PARTITION, ""])
    if len(rest) in (2, 3) and (len(rest) == 2 or rest[2] == "") and rest[1]:
        return _redirect(request, rest, [PARTITION, str(canonicalize_name(rest[1])), ""])
    if len(rest) != 3 or not rest[1] or not rest[2]:
        raise NotFound(f"Nothing at {request.url.path}",
                       "Python packages are at simple/<project>/<file>", code="not_found")
    project = str(canonicalize_name(rest[1]))
    filename = rest[2]
    if filename.endswith(".metadata"):
        return await run_in_threadpool(_metadata, request, rt, view, project, filename[:-len(".metadata")])
    return await run_in_threadpool(send_stored_file, request, rt, p, view, f"{PARTITION}/{project}/{filename}",
                                   ("python", PARTITION))


def _metadata(request: Request, rt: Runtime, view: ChannelView, project: str, filename: str) -> Response:
    f = serving.find_file(rt.sessions, view.id, f"{PARTITION}/{project}/{filename}")
    text = (f.meta or {}).get("METADATA")
    if text is None or f.family != "python":
        raise NotFound(f"No metadata for {filename}", "Download the distribution itself",
                       code="metadata_not_found")
    data = text.encode()
    etag = '"' + hashlib.sha256(data).hexdigest() + '"'
    return bytes_response(request, data, etag, serving.http_now(), "text/plain; charset=utf-8",
                          view.privacy == "public")
