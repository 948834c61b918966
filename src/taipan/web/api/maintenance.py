"""/api/system/blob_cleanup and /api/diagnose/blobs: reclaiming and inspecting the blob store.

conda-repo-cli's system commands: POST starts a cleanup (a scan job; the body may be a JSON array
of sha256 digests to look at only those), GET shows the latest one, DELETE deletes what its scan
found (as a job) or cancels it while it is still scanning. Admins only.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from taipan.errors import InvalidInput, NotFound
from taipan.services import blob_cleanup, maintenance
from taipan.web.deps import PrincipalDep, RuntimeDep, SessionDep

router = APIRouter(tags=["system"])


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidInput("The request body is not valid JSON", "Send JSON, or nothing",
                           code="invalid_request") from exc


@router.post("/system/blob_cleanup")
async def start_cleanup(request: Request, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    blob_cleanup.require_admin(p, "artifact:delete")
    body = await _json_body(request)
    candidates = blob_cleanup.check_candidates(body.get("sha256") if isinstance(body, dict) else body)
    return await run_in_threadpool(_start, rt, p.username, candidates)


def _start(rt: Any, username: str | None, candidates: list[str] | None) -> dict[str, Any]:
    with rt.sessions() as db:
        row = blob_cleanup.start(db, username, candidates)
        db.commit()
        assert rt.jobs is not None
        rt.jobs.enqueue(maintenance.BLOB_SCAN_JOB, {"id": row.id})
        db.refresh(row)
        return blob_cleanup.cleanup_json(row)


@router.get("/system/blob_cleanup")
def show_cleanup(p: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    blob_cleanup.require_admin(p, "artifact:view")
    row = blob_cleanup.latest(db)
    if row is None:
        raise NotFound("No blob cleanup has run yet", "Start one with POST /api/system/blob_cleanup",
                       code="no_blob_cleanup")
    return blob_cleanup.cleanup_json(row)


@router.delete("/system/blob_cleanup")
def delete_found(p: PrincipalDep, db: SessionDep, rt: RuntimeDep) -> dict[str, Any]:
    blob_cleanup.require_admin(p, "artifact:delete")
    row, run = blob_cleanup.request_delete(db)
    answer = blob_cleanup.cleanup_json(row)
    db.commit()
    if run:
        assert rt.jobs is not None
        rt.jobs.enqueue(maintenance.BLOB_DELETE_JOB, {"id": row.id})
    return answer


@router.post("/diagnose/blobs")
async def diagnose(request: Request, p: PrincipalDep, rt: RuntimeDep) -> dict[str, Any]:
    blob_cleanup.require_admin(p, "artifact:view")
    body = await _json_body(request) or {}
    if not isinstance(body, dict):
        raise InvalidInput("Send a JSON object", 'e.g. {"download_as": "json", "channel_names": ["main"]}',
                           code="invalid_request")
    if body.get("download_as", "json") != "json":
        raise InvalidInput(f"Cannot produce the report as {body.get('download_as')!r}", "Use download_as: json",
                           code="unsupported_format")
    names = body.get("channel_names")
    if names is not None and (not isinstance(names, list) or len(names) > 1000
                              or not all(isinstance(n, str) and len(n) <= 130 for n in names)):
        raise InvalidInput("channel_names must be a list of channel names", 'e.g. ["main", "main/dev"]',
                           code="invalid_request")

    def run() -> dict[str, Any]:
        with rt.sessions() as db:
            return blob_cleanup.diagnose(db, rt.blobs, names or None)

    return await run_in_threadpool(run)
