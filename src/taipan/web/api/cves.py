"""/api/cves: the CVE store (conda-repo-cli's `cves` command), curation, and the CPE mapping table."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Path, Query

from taipan.domain.cve import CVE_ID, STATUSES
from taipan.errors import InvalidInput
from taipan.services import cves
from taipan.web.api.channels import MAX_LIMIT, Offset
from taipan.web.deps import PrincipalDep, SessionDep

router = APIRouter(tags=["cves"])
# The constraints below are published in the schema; the handlers check them too and answer 400
# with a hint (not FastAPI's 422), so they are documentation here, not validation.
CveId = Path(..., max_length=64, description="A CVE id (CVE-2023-0286) or an OSV advisory id",
             json_schema_extra={"pattern": CVE_ID.pattern})
PRODUCT_PATTERN = r"^[^:\s][^:]*:[^:]*[^:\s]$"
Product = Path(..., max_length=255, description="A CPE vendor:product, e.g. haxx:libcurl",
               json_schema_extra={"pattern": PRODUCT_PATTERN})
SORT_VALUES = [v for key in cves.SORTS for v in (key, "-" + key)]
MAPPING_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["packages"],
    "properties": {"packages": {"type": "array", "maxItems": 100, "items": {
        "type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^\S([\s\S]*\S)?$"}}}}}}}
CURATE_BODY = {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["status"], "additionalProperties": False,
    "properties": {"status": {"type": "string", "enum": list(STATUSES)},
                   "note": {"type": "string", "maxLength": cves.MAX_NOTE}}}}}}


@router.get("/cves")
def list_cves(p: PrincipalDep, db: SessionDep, offset: Offset = 0,
              limit: int = Query(50, ge=0, le=MAX_LIMIT, description="Rows per page"),
              status: str | None = Query(None, max_length=16,
                                         description="reported, active, cleared, mitigated, disputed, curated",
                                         json_schema_extra={"enum": [*STATUSES, "curated"]}),
              min_score: float | None = Query(None, ge=0, le=10),
              package: str | None = Query(None, max_length=255),
              q: str | None = Query(None, max_length=64, description="part of the CVE id"),
              sort: str = Query("-score", max_length=20, description="score, published, modified or id; - for "
                                "descending", json_schema_extra={"enum": SORT_VALUES})) -> dict[str, Any]:
    total, items = cves.list_cves(db, p, offset=offset, limit=limit, status=status, min_score=min_score,
                                  package=package, q=q, sort=sort)
    return {"total_count": total, "items": items}


@router.get("/cves/mappings")
def list_mappings(p: PrincipalDep, db: SessionDep,
                  product: str | None = Query(None, max_length=255)) -> dict[str, Any]:
    items = cves.list_mappings(db, p, product)
    return {"total_count": len(items), "items": items}


@router.put("/cves/mappings/{product}", openapi_extra={"requestBody": MAPPING_BODY})
def set_mapping(p: PrincipalDep, db: SessionDep, product: str = Product,
                body: dict[str, Any] = Body(..., examples=[{"packages": ["libcurl", "curl"]}])) -> dict[str, Any]:
    answer = cves.set_mapping(db, p, product, body.get("packages"))
    db.commit()
    return answer


@router.delete("/cves/mappings/{product}")
def delete_mapping(p: PrincipalDep, db: SessionDep, product: str = Product) -> dict[str, Any]:
    answer = cves.delete_mapping(db, p, product)
    db.commit()
    return answer


@router.get("/cves/{cve_id}")
def show_cve(p: PrincipalDep, db: SessionDep, cve_id: str = CveId) -> dict[str, Any]:
    return cves.show_cve(db, p, cve_id)


@router.get("/cves/{cve_id}/files")
def cve_files(p: PrincipalDep, db: SessionDep, cve_id: str = CveId, offset: Offset = 0,
              limit: int = Query(50, ge=0, le=MAX_LIMIT, description="Rows per page")) -> dict[str, Any]:
    total, items = cves.cve_files(db, p, cve_id, offset, limit)
    return {"total_count": total, "items": items}


@router.put("/cves/{cve_id}", openapi_extra={"requestBody": CURATE_BODY})
def curate(p: PrincipalDep, db: SessionDep, cve_id: str = CveId,
           body: dict[str, Any] = Body(..., examples=[{"status": "cleared", "note": "not in our build"}])
           ) -> dict[str, Any]:
    """Set the curation status (reported, active, cleared, mitigated, disputed) with a note."""
    unknown = sorted(set(body) - {"status", "note"})
    if unknown:
        raise InvalidInput(f"Unknown field(s): {', '.join(unknown)}", "Send {\"status\": ..., \"note\": ...}",
                           code="invalid_field")
    _row, _files = cves.curate(db, p, cve_id, body.get("status"), body.get("note", ""))
    answer = cves.show_cve(db, p, cve_id)
    db.commit()
    return answer
