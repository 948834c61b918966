"""Serving of the one-file families without an index (notebooks, environment files, projects,
stored SBOMs): ``/api/repo/<channel>[/<sub>]/<root>/...`` is the file whose ckey is that path, sent
from the blob store as for conda packages (Range, immutable caching, each download recorded)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from taipan.domain.permissions import Principal
from taipan.errors import NotFound
from taipan.runtime import Runtime
from taipan.web.repo.common import ChannelView, Head, Located, send_stored_file


def locate(rest: list[str], head: Head) -> Located | None:
    return None  # nothing published: every path is a stored file


def stored(rest: list[str]) -> str | None:
    return "/".join(rest) if len(rest) >= 2 and all(rest) else None


async def serve(request: Request, rt: Runtime, p: Principal, view: ChannelView, rest: list[str]) -> Response:
    if len(rest) < 2 or not all(rest):
        raise NotFound(f"Nothing at {request.url.path}", "List the channel's files with "
                       "`conda repo channel --list-files CHANNEL --family FAMILY`", code="not_found")
    return await run_in_threadpool(send_stored_file, request, rt, p, view, "/".join(rest))
