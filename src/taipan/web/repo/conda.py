"""Conda channel serving: /api/repo/[t/<token>/]<channel>[/<subchannel>]/<subdir>/<file>.

Index files come from the indexer's publication of the subdir (see app.published); package files
are sent from the blob store with Range support, and each download is recorded.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from taipan.domain.families.conda import MEDIA_TYPES
from taipan.domain.names import SUBDIR_SET
from taipan.domain.permissions import Principal
from taipan.errors import NotFound
from taipan.runtime import Runtime
from taipan.services import serving
from taipan.web.repo.common import ChannelView, Head, Located, send_published, send_stored_file

INDEX_FILES = frozenset(MEDIA_TYPES)
CHANNELDATA = "channeldata.json"
# A channel document: answered from memory while current, else made by ``serve``.
CHANNELDATA_LOCATED = Located("conda", "", CHANNELDATA, document=True)


def locate(rest: list[str], head: Head) -> Located | None:
    if rest == [CHANNELDATA]:
        return CHANNELDATA_LOCATED
    if len(rest) != 2 and not (len(rest) == 3 and rest[1] == "shards"):
        return None
    subdir, name = rest[0], "/".join(rest[1:])
    if subdir not in SUBDIR_SET:
        return None
    if name.startswith("shards/"):
        return Located("conda", subdir, name, missing_code="shard_not_found",
                       missing_hint="Fetch repodata_shards.msgpack.zst again")
    if name in INDEX_FILES:
        return Located("conda", subdir, name)
    return None


def stored(rest: list[str]) -> str | None:
    """The ckey a path names when it may be a package file (answered from memory when known)."""
    if len(rest) != 2 or rest[0] not in SUBDIR_SET or not rest[1] or rest[1] in INDEX_FILES:
        return None
    return "/".join(rest)


async def serve(request: Request, rt: Runtime, p: Principal, view: ChannelView, rest: list[str]) -> Response:
    if rest == [CHANNELDATA]:
        # Built once per change of the channel's conda subdirs, not per request.
        pub = rt.indexer.documents.peek(view.id, CHANNELDATA) or await run_in_threadpool(
            rt.indexer.documents.publication, view.id, CHANNELDATA, SUBDIR_SET, "application/json",
            lambda: serving.channeldata(rt.sessions, view.id, view.path))
        return await send_published(request, view, pub, CHANNELDATA_LOCATED)
    if len(rest) < 2 or rest[0] not in SUBDIR_SET:
        raise NotFound(f"Nothing at {request.url.path}",
                       "Subdirs are platform names such as noarch or linux-64", code="not_found")
    ckey = "/".join(rest)
    return await run_in_threadpool(send_stored_file, request, rt, p, view, ckey, ("conda", rest[0]))
