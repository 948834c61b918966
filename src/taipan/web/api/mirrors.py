"""/api/channels/{ch}[/subchannels/{sub}]/mirrors and /api/mirrors, plus passive-file serving.

Status codes are the ones conda-repo-cli expects: create 201, update 202, delete 204, stop 200.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Body, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from taipan.db.models import File
from taipan.domain.permissions import Principal
from taipan.errors import InvalidInput
from taipan.runtime import Runtime
from taipan.services import channels, mirroring
from taipan.services.mirror_runs import MirrorEnv
from taipan.web.deps import PrincipalDep, RuntimeDep, SessionDep, UserDep
from taipan.web.repo.common import record_download

router = APIRouter(tags=["mirrors"])
PATHS = ("/channels/{ch}/mirrors", "/channels/{ch}/subchannels/{sub}/mirrors")


def _env(rt: Runtime) -> MirrorEnv:
    return rt.extras["mirror_env"]


def _channel(request: Request, db: Session) -> Any:
    pp = request.path_params
    return channels.get_channel(db, f"{pp['ch']}/{pp['sub']}" if "sub" in pp else pp["ch"])


def _body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object", "See the mirror API documentation",
                           code="invalid_request")
    return body


def _notify(rt: Runtime, channel_id: str, subdirs: set[str]) -> None:
    if subdirs:
        rt.indexer.notify(channel_id, subdirs)


@router.get("/mirrors")
async def list_all(request: Request, p: PrincipalDep, db: SessionDep,
                   offset: int = Query(0, json_schema_extra={"minimum": 0}),
                   limit: int = Query(100, json_schema_extra={"minimum": 0}),
                   sort: str = Query("mirror_name", max_length=100)) -> dict[str, Any]:
    # conda-repo-cli sends its paging as a JSON body on this GET; query parameters work too.
    raw = await request.body()
    if raw:
        try:
            opts = json.loads(raw)
        except ValueError:
            opts = {}
        if isinstance(opts, dict):
            offset = int(opts.get("offset", offset))
            limit = int(opts.get("limit", limit))
            sort = str(opts.get("sort", sort))
    if offset < 0 or limit < 0:
        raise InvalidInput("Invalid paging", "Use offset >= 0 and limit >= 0", code="invalid_paging")
    total, rows = mirroring.list_all_mirrors(db, p, offset, limit, sort)
    return {"total_count": total, "items": [mirroring.global_mirror_json(m, c, p) for m, c in rows]}


def _list(request: Request, p: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    channel = _channel(request, db)
    items = [mirroring.mirror_json(m, channel, p) for m in mirroring.list_channel_mirrors(db, p, channel)]
    return {"total_count": len(items), "items": items}


def _create(request: Request, p: UserDep, db: SessionDep, rt: RuntimeDep,
            body: Any = Body(...)) -> JSONResponse:
    channel = _channel(request, db)
    channels.require_read(p, channel)  # a hidden channel answers like a missing one
    m, run = mirroring.create_mirror(db, p, channel, _body(body), env=_env(rt))
    db.commit()
    if run:
        mirroring.enqueue_runs(_env(rt), [m.id])
        db.refresh(m)  # enqueueing may have marked it (e.g. failed: the queue is down)
    return JSONResponse(mirroring.mirror_json(m, channel, p), status_code=201)


def _show(request: Request, mirror_id: str, p: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    channel = _channel(request, db)
    channels.require_read(p, channel, "mirror:view")
    return mirroring.mirror_json(mirroring.get_mirror(db, channel, mirror_id), channel, p)


def _update(request: Request, mirror_id: str, p: UserDep, db: SessionDep, rt: RuntimeDep,
            body: Any = Body(...)) -> JSONResponse:
    channel = _channel(request, db)
    channels.require_read(p, channel)  # a hidden channel's mirror names stay hidden
    m = mirroring.get_mirror(db, channel, mirror_id)
    run = mirroring.update_mirror(db, p, channel, m, _body(body), env=_env(rt))
    db.commit()
    if run:
        mirroring.enqueue_runs(_env(rt), [m.id])
        db.refresh(m)  # enqueueing may have marked it (e.g. failed: the queue is down)
    return JSONResponse(mirroring.mirror_json(m, channel, p), status_code=202)


def _delete(request: Request, mirror_id: str, p: UserDep, db: SessionDep, rt: RuntimeDep) -> Response:
    channel = _channel(request, db)
    channels.require_read(p, channel)  # a hidden channel's mirror names stay hidden
    m = mirroring.get_mirror(db, channel, mirror_id)
    subdirs = mirroring.delete_mirror(db, p, channel, m)
    db.commit()
    _notify(rt, channel.id, subdirs)
    return Response(status_code=204)


def _stop(request: Request, mirror_id: str, p: UserDep, db: SessionDep) -> dict[str, Any]:
    channel = _channel(request, db)
    channels.require_read(p, channel)  # a hidden channel's mirror names stay hidden
    m = mirroring.get_mirror(db, channel, mirror_id)
    mirroring.stop_mirror(db, p, channel, m)
    db.commit()
    return mirroring.mirror_json(m, channel, p)


for _base in PATHS:
    router.add_api_route(_base, _list, methods=["GET"])
    router.add_api_route(_base, _create, methods=["POST"], status_code=201)
    router.add_api_route(_base + "/{mirror_id}", _show, methods=["GET"])
    router.add_api_route(_base + "/{mirror_id}", _update, methods=["PUT"], status_code=202)
    router.add_api_route(_base + "/{mirror_id}", _delete, methods=["DELETE"], status_code=204)
    router.add_api_route(_base + "/{mirror_id}/stop_mirror_sync", _stop, methods=["POST"])


def passive_fetch(request: Request, rt: Runtime, p: Principal, view: Any, f: File) -> Response:
    """The serving layer's hook for a passive file: stream it from upstream while storing it."""
    headers = {"ETag": f'"{f.sha256}"' if f.sha256 else "", "Cache-Control": (
        "public" if view.privacy == "public" else "private") + ", max-age=31536000, immutable"}
    headers = {k: v for k, v in headers.items() if v}
    if f.size:
        headers["Content-Length"] = str(f.size)
    if request.method == "HEAD":
        return Response(status_code=200, headers=headers, media_type="application/octet-stream")
    stream = mirroring.passive_stream(_env(rt), f.id)
    first = next(stream, b"")  # fail here (a clean 502) rather than in the middle of the body
    record_download(rt, request, p, view, f)

    def body() -> Any:
        yield first
        yield from stream

    return StreamingResponse(body(), headers=headers, media_type="application/octet-stream")


def install(app: FastAPI, runtime: Runtime) -> None:
    """Mount the mirror API and the passive-file hook (called by create_app)."""
    app.include_router(router, prefix="/api")
    runtime.extras["passive_fetch"] = passive_fetch
