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


# Names as a list, or one comma-separated string (as conda-repo-cli's --user_names a,b); null or
# empty: no restriction.
_NAMES = {"anyOf": [
    {"type": "array", "maxItems": reports.MAX_NAMES, "items": {"type": "string", "maxLength": 64}},
    {"type": "string"}, {"type": "null"}]}
# What the handler reads (it parses the raw body itself, to stream the answer): published so that
# clients and schema tools know it. A range longer than a year or a channel the caller does not own
# is refused with a hint (400/403/404), which a schema cannot say.
REPORT_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["from_date"],
    "properties": {"from_date": {"type": "string", "format": "date"},
                   "to_date": {"anyOf": [{"type": "string", "format": "date"}, {"enum": ["", None]}],
                               "description": "default: today"},
                   "download_as": {"enum": [*reports.FORMATS, "", None], "description": "default: json"},
                   "user_names": _NAMES, "channel_names": _NAMES}}}}}


# The answer is JSON, or CSV when download_as says so.
REPORT_ANSWERS: dict[int | str, dict[str, Any]] = {200: {"description": "The report, as download_as asks", "content": {
    "application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}}}


@router.post("/reports/artifact_downloads", openapi_extra={"requestBody": REPORT_BODY}, responses=REPORT_ANSWERS)
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
