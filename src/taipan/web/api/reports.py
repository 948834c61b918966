"""POST /api/reports/artifact_downloads: the download-history report (conda-repo-cli's `report`),
as JSON (``downloaded_items``) or CSV, streamed from the database."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from taipan.domain.permissions import Principal
from taipan.errors import InvalidInput
from taipan.runtime import Runtime
from taipan.services import reports
from taipan.web.deps import RuntimeDep, UserDep

router = APIRouter(tags=["reports"])
MAX_BODY = 1024 * 1024


def _query(rt: Runtime, p: Principal, body: Any) -> reports.ReportQuery:
    with rt.sessions() as db:
        return reports.parse(db, p, body)


@router.post("/reports/artifact_downloads")
async def artifact_downloads(request: Request, p: UserDep, rt: RuntimeDep) -> StreamingResponse:
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise InvalidInput("The report request is too large", reports.HINT, code="invalid_report")
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as exc:
        raise InvalidInput("The report request is not valid JSON", reports.HINT, code="invalid_report") from exc
    q = await run_in_threadpool(_query, rt, p, body)
    media = "application/json" if q.fmt == "json" else "text/csv; charset=utf-8"
    return StreamingResponse(reports.stream(rt.sessions, q), media_type=media,
                             headers={"Content-Disposition": f'attachment; filename="{q.filename}"',
                                      "Cache-Control": "no-store"})
