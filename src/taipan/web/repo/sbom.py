"""``?sbom=download`` on any stored file's URL: its SBOM (SPDX 2.3 JSON, or CycloneDX 1.6 JSON with
``&format=cyclonedx``), named by Content-Disposition. Read access to the channel is checked by the
caller, like for the file itself; fetching an SBOM is not a download of the file."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from taipan.runtime import Runtime
from taipan.services import sbom as sbom_service
from taipan.web.deps import base_url


def respond(request: Request, rt: Runtime, channel_id: str, channel_path: str, ckey: str) -> Response:
    """Runs in a thread (database, and hashing a package's files the first time)."""
    fmt = sbom_service.check_format(request.query_params.get("format"))
    base = base_url(request)
    with rt.sessions() as db:
        doc = sbom_service.document(db, rt.blobs, channel_id=channel_id, channel_url=f"{base}/api/repo/{channel_path}",
                                    base_url=base, ckey=ckey, fmt=fmt)
    return Response(doc.data, media_type=doc.media_type,
                    headers={"Content-Disposition": f'attachment; filename="{doc.filename}"',
                             "Cache-Control": "private, no-cache", "X-Content-Type-Options": "nosniff"})


def respond_for_filename(request: Request, rt: Runtime, channel_id: str, channel_path: str,
                         filename: str) -> Response:
    with rt.sessions() as db:
        ckey = sbom_service.find_by_filename(db, channel_id, filename)
    if ckey is None:
        raise sbom_service.no_sbom(filename)
    return respond(request, rt, channel_id, channel_path, ckey)
