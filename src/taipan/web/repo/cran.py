"""CRAN-like serving: /api/repo/[t/<token>/]<channel>[/<subchannel>]/{src,bin}/...

``<partition>/PACKAGES`` and ``PACKAGES.gz`` come from the indexer's publication of the partition
(see app.published), and so do ``PACKAGES.rds``, R's serialization of the same index, and
``src/contrib/Meta/archive.rds``, the archived versions (what remotes::install_version reads). The
newest version of a source package is at ``src/contrib/<pkg>_<v>.tar.gz``, every older one at
``src/contrib/Archive/<pkg>/<pkg>_<v>.tar.gz``, as on CRAN; binaries at their tree's path.
"""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from taipan.domain import cran
from taipan.domain.permissions import Principal
from taipan.errors import InvalidInput, NotFound
from taipan.runtime import Runtime
from taipan.services import serving
from taipan.web.repo.common import ChannelView, Head, Located, send_stored_file

INDEX_FILES = ("PACKAGES", "PACKAGES.gz", "PACKAGES.rds")


def locate(rest: list[str], head: Head) -> Located | None:
    if rest == ["src", "contrib", "Meta", "archive.rds"]:
        return Located("cran", cran.SOURCE_PARTITION, "Meta/archive.rds")
    if len(rest) < 3 or rest[-1] not in INDEX_FILES:
        return None
    subdir = "/".join(rest[:-1])
    return Located("cran", subdir, rest[-1]) if cran.is_partition(subdir) else None


def stored(rest: list[str]) -> str | None:
    """The ckey of a binary package's URL; source packages are not answered from memory (which of
    src/contrib/ and its Archive/ serves a version is a database question)."""
    if len(rest) < 3 or rest[0] != "bin" or rest[-1] in INDEX_FILES or not all(rest):
        return None
    return "/".join(rest)


def _not_found(request: Request, hint: str = "R finds packages through src/contrib/PACKAGES") -> NotFound:
    return NotFound(f"Nothing at {request.url.path}", hint, code="not_found")


def _is_newest(rt: Runtime, view: ChannelView, name: str, version: str) -> bool:
    versions = serving.versions_in(rt.sessions, view.id, "cran", cran.SOURCE_PARTITION, name)
    return bool(versions) and max(versions, key=lambda v: (cran.version_key(v), v)) == version


def _source_file(request: Request, rt: Runtime, p: Principal, view: ChannelView, filename: str,
                 archived: bool) -> Response:
    fn = cran.parse_filename(filename)
    if fn.ext != cran.SOURCE_EXT:
        raise _not_found(request)
    if _is_newest(rt, view, fn.name, fn.version) == archived:
        raise _not_found(request, f"The newest version of {fn.name} is in src/contrib/, older ones in "
                                  f"src/contrib/Archive/{fn.name}/")
    return send_stored_file(request, rt, p, view, f"{cran.SOURCE_PARTITION}/{filename}",
                            ("cran", cran.SOURCE_PARTITION))


async def serve(request: Request, rt: Runtime, p: Principal, view: ChannelView, rest: list[str]) -> Response:
    filename = rest[-1]
    subdir = "/".join(rest[:-1])
    try:
        if rest[:3] == ["src", "contrib", "Archive"] and len(rest) == 5:
            if cran.parse_filename(filename).name != rest[3]:
                raise _not_found(request)
            return await run_in_threadpool(_source_file, request, rt, p, view, filename, True)
        if not cran.is_partition(subdir):
            raise _not_found(request, "R trees are src/contrib, bin/windows/contrib/<R x.y> and "
                                      "bin/macosx/[<build>/]contrib/<R x.y>")
        cran.parse_filename(filename)
    except InvalidInput:
        raise _not_found(request) from None
    if subdir == cran.SOURCE_PARTITION:
        return await run_in_threadpool(_source_file, request, rt, p, view, filename, False)
    return await run_in_threadpool(send_stored_file, request, rt, p, view, f"{subdir}/{filename}",
                                   ("cran", subdir))
