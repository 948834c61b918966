"""The CVE API: listing and showing CVEs, the files they match, curation, and the CPE mapping table.

Anyone signed in with ``cve:view`` reads CVEs; the packages and files shown are only those in
channels the caller can read. Curation and mapping edits are for administrators whose credential
holds ``cve:manage``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.orm import Session

from taipan.db.cves import CpeMapping, Cve, CveAffect, CveFile, CveHistory
from taipan.db.models import Channel, File, utcnow
from taipan.domain import cve as rules
from taipan.domain.permissions import Principal
from taipan.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from taipan.services import cve_matching
from taipan.services.channels import can_read

SORTS = {"score": Cve.score, "published": Cve.published_at, "modified": Cve.modified_at, "id": Cve.id}
MAX_NOTE = 2_000
MAX_PACKAGES = 50


def require_view(p: Principal) -> None:
    if not p.authenticated:
        raise Unauthenticated("Viewing CVEs requires authentication", "Log in first (`conda repo login`)",
                              code="authentication_required")
    if not p.has_scope("cve:view"):
        raise Forbidden("Your token does not have the 'cve:view' scope",
                        "Sign in with your password, or use a token with that scope", code="insufficient_scope")


def require_manage(p: Principal) -> None:
    require_view(p)
    if not p.is_admin:
        raise Forbidden("Only administrators can curate CVEs and edit the CPE mapping", "Ask an administrator",
                        code="admin_required")
    if not p.has_scope("cve:manage"):
        raise Forbidden("Your token does not have the 'cve:manage' scope",
                        "Sign in with your password, or use a token with that scope", code="insufficient_scope")


def get_cve(db: Session, cve_id: str) -> Cve:
    rules.check_cve_id(cve_id)
    row = db.get(Cve, cve_id)
    if row is None:
        row = db.scalar(select(Cve).where(func.upper(Cve.id) == cve_id.upper()))
    if row is None:
        raise NotFound(f"No CVE {cve_id!r} in this server's CVE data",
                       "List CVEs with `conda repo cves --list`; admins import data with `taipan cve import`",
                       code="cve_not_found")
    return row


def _visible_channels(db: Session, p: Principal) -> dict[str, Channel]:
    return {c.id: c for c in db.scalars(select(Channel)) if can_read(p, c)}


def cve_json(row: Cve, packages_count: int | None = None) -> dict[str, Any]:
    cvss3 = row.cvss3 or {}
    cvss2 = row.cvss2 or {}
    cvss4 = row.cvss4 or {}
    return {
        "id": row.id, "curated": row.status != "reported", "status": row.status,
        "score": row.score, "score_type": row.score_type, "severity": rules.severity(row.score),
        "cvssv3_score": (cvss3.get("cvssV3") or {}).get("baseScore"),
        "cvssv2_score": (cvss2.get("cvssV2") or {}).get("baseScore"),
        "cvssv4_score": (cvss4.get("cvssV4") or {}).get("baseScore"),
        "cvssv3": row.cvss3, "cvssv2": row.cvss2, "cvssv4": row.cvss4,
        "description": row.description, "aliases": list(row.aliases or []), "sources": sorted(row.sources or {}),
        "published_at": row.published_at.isoformat() if row.published_at else None,
        "modified_at": row.modified_at.isoformat() if row.modified_at else None,
        "status_note": row.status_note, "status_by": row.status_by,
        "status_at": row.status_at.isoformat() if row.status_at else None,
        "packages_count": packages_count,
    }


def _visible_files(db: Session, p: Principal, cve_ids: list[str]) -> dict[str, list[tuple[File, Channel]]]:
    channels = _visible_channels(db, p)
    out: dict[str, list[tuple[File, Channel]]] = defaultdict(list)
    if not cve_ids or not channels:
        return out
    q = (select(CveFile.cve_id, File).join(File, File.id == CveFile.file_id)
         .where(CveFile.cve_id.in_(cve_ids), File.channel_id.in_(list(channels)))
         .order_by(File.name, File.version, File.subdir, File.filename))
    for cve_id, f in db.execute(q).all():
        out[cve_id].append((f, channels[f.channel_id]))
    return out


def _packages(files: list[tuple[File, Channel]]) -> list[dict[str, Any]]:
    seen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for f, _ in files:
        key = (f.family, f.subdir, f.name, f.version)
        seen.setdefault(key, {"family": f.family, "subdir": f.subdir, "name": f.name, "version": f.version,
                              "sha256": f.sha256})
    return list(seen.values())


def list_cves(db: Session, p: Principal, *, offset: int, limit: int, status: str | None = None,
              min_score: float | None = None, package: str | None = None, q: str | None = None,
              sort: str = "-score") -> tuple[int, list[dict[str, Any]]]:
    require_view(p)
    conds: list[Any] = []
    if status:
        if status == "uncurated":
            status = "reported"
        if status == "curated":
            conds.append(Cve.status != "reported")
        else:
            conds.append(Cve.status == rules.check_status(status))
    if min_score is not None:
        conds.append(Cve.score >= min_score)
    if q:
        conds.append(Cve.id.contains(q.upper()))
    if package:
        keys = {(eco, rules.ecosystem_key(eco, package)) for eco in ("cpe", "PyPI", "CRAN")}
        sub = select(CveAffect.cve_id).where(CveAffect.package.in_(sorted({k for _, k in keys})))
        conds.append(Cve.id.in_(sub))
    key = sort.strip().lstrip("+-")
    if key not in SORTS:
        raise InvalidInput(f"Cannot sort CVEs by {sort!r}", f"Sort by {', '.join(SORTS)}; prefix - for descending",
                           code="invalid_sort")
    column = SORTS[key]
    order = [column.desc().nulls_last() if sort.strip().startswith("-") else column.asc().nulls_last(), Cve.id]
    total = db.scalar(select(func.count()).select_from(Cve).where(*conds)) or 0
    q_rows = select(Cve).where(*conds).order_by(*order).offset(offset)
    if limit:
        q_rows = q_rows.limit(limit)
    rows = list(db.scalars(q_rows))
    files = _visible_files(db, p, [r.id for r in rows])
    return total, [cve_json(r, len(_packages(files.get(r.id, [])))) for r in rows]


def show_cve(db: Session, p: Principal, cve_id: str) -> dict[str, Any]:
    require_view(p)
    row = get_cve(db, cve_id)
    packages = _packages(_visible_files(db, p, [row.id]).get(row.id, []))
    out = cve_json(row, len(packages))
    out["packages"] = packages[:MAX_PACKAGES * 20]
    affects: dict[str, dict[str, Any]] = {}
    for s, e, prod, spec in db.execute(select(CveAffect.source, CveAffect.ecosystem, CveAffect.product,
                                              CveAffect.spec).where(CveAffect.cve_id == row.id)
                                       .order_by(CveAffect.id)):
        item = {"source": s, "ecosystem": e, "product": prod, "spec": spec}
        affects.setdefault(json.dumps(item, sort_keys=True), item)  # one row per mapped package name
    out["affects"] = list(affects.values())
    out["history"] = [{"at": h.at.isoformat(), "username": h.username, "old_status": h.old_status,
                       "status": h.new_status, "note": h.note}
                      for h in db.scalars(select(CveHistory).where(CveHistory.cve_id == row.id)
                                          .order_by(CveHistory.id))]
    return out


def cve_files(db: Session, p: Principal, cve_id: str, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
    require_view(p)
    row = get_cve(db, cve_id)
    files = _visible_files(db, p, [row.id]).get(row.id, [])
    page = files[offset:offset + limit] if limit else files[offset:]
    items = []
    for f, ch in page:
        top, sub = (ch.parent.name, ch.name) if ch.parent else (ch.name, None)
        items.append({"channel_name": ch.name if sub is None else sub, "parent_channel_name": top if sub else None,
                      "channel_path": ch.path, "artifact_family": f.family, "cve_status": f.cve_status,
                      "cve_score": f.cve_score, "common_name": f.name, "version": f.version, "ckey": f.ckey,
                      "filename": f.filename, "subdir": f.subdir})
    return len(files), items


def curate(db: Session, p: Principal, cve_id: str, status: Any, note: Any = "") -> tuple[Cve, list[str]]:
    """Set a CVE's status (recorded with who, when and the note); returns the CVE and the ids of the
    files whose score or status may have changed."""
    require_manage(p)
    new = rules.check_status(status)
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise InvalidInput(f"The note must be text of at most {MAX_NOTE} characters", "Shorten the note",
                           code="invalid_note")
    row = get_cve(db, cve_id)
    old = row.status
    row.status, row.status_note, row.status_by, row.status_at = new, note, p.username, utcnow()
    row.updated_at = utcnow()
    db.add(CveHistory(cve_id=row.id, username=p.username, old_status=old, new_status=new, note=note, at=utcnow()))
    db.flush()
    return row, cve_matching.refresh_summaries(db, [row.id])


# --- the CPE mapping table ----------------------------------------------------------------------------

def _check_product(product: str) -> str:
    product = product.strip().lower()
    if product.count(":") != 1 or not all(product.split(":")) or len(product) > 255:
        raise InvalidInput(f"{product[:80]!r} is not a CPE vendor:product", "For example haxx:libcurl",
                           code="invalid_cpe_product")
    return product


def list_mappings(db: Session, p: Principal, product: str | None = None) -> list[dict[str, Any]]:
    require_view(p)
    shipped = cve_matching.shipped_mappings()
    custom = {r.product: r for r in db.scalars(select(CpeMapping))}
    out = []
    for key in sorted(set(shipped) | set(custom)):
        if product and product.lower() not in key:
            continue
        row = custom.get(key)
        out.append({"product": key, "packages": list(row.packages) if row else shipped[key],
                    "source": "admin" if row else "shipped", "shipped": shipped.get(key),
                    "updated_by": row.updated_by if row else None,
                    "updated_at": row.updated_at.isoformat() if row else None})
    return out


def _remap(db: Session, product: str) -> dict[str, int]:
    """Re-resolve the CPE affects of one product after its mapping changed, and rematch."""
    table = cve_matching.mappings(db)
    rows = db.execute(select(CveAffect.cve_id, CveAffect.source, CveAffect.package, CveAffect.spec)
                      .where(CveAffect.ecosystem == "cpe", CveAffect.product == product)).all()
    touched = {("cpe", r.package) for r in rows}
    distinct: dict[tuple[str, str, str], tuple[str, str, dict[str, Any]]] = {}
    for r in rows:
        distinct.setdefault((r.cve_id, r.source, repr(sorted(r.spec.items()))), (r.cve_id, r.source, r.spec))
    db.execute(delete(CveAffect).where(and_(CveAffect.ecosystem == "cpe", CveAffect.product == product)))
    new_rows = [{"cve_id": cid, "source": src, "ecosystem": "cpe", "product": product,
                 "package": rules.ecosystem_key("cpe", pkg), "spec": spec}
                for cid, src, spec in distinct.values()
                for pkg in dict.fromkeys(cve_matching.packages_for(product, table))]
    if new_rows:
        db.execute(insert(CveAffect), new_rows)
    touched.update(("cpe", r["package"]) for r in new_rows)
    return cve_matching.match_names(db, touched) if touched else {"files": 0}


def set_mapping(db: Session, p: Principal, product: str, packages: Any) -> dict[str, Any]:
    require_manage(p)
    product = _check_product(product)
    if (not isinstance(packages, list) or len(packages) > 100
            or not all(isinstance(x, str) and 0 < len(x) <= 255 and x.strip() == x for x in packages)):
        raise InvalidInput("packages must be a list of at most 100 package names", 'e.g. {"packages": ["libcurl"]}',
                           code="invalid_mapping")
    row = db.get(CpeMapping, product)
    if row is None:
        row = CpeMapping(product=product)
        db.add(row)
    row.packages, row.updated_by, row.updated_at = list(dict.fromkeys(packages)), p.username, utcnow()
    db.flush()
    return {"product": product, "packages": row.packages, "source": "admin", "matching": _remap(db, product)}


def delete_mapping(db: Session, p: Principal, product: str) -> dict[str, Any]:
    """Drop an admin's entry: the shipped one (or the fallback) applies again."""
    require_manage(p)
    product = _check_product(product)
    row = db.get(CpeMapping, product)
    if row is None:
        raise NotFound(f"No admin mapping for {product!r}", "List them with `taipan cve map --list`",
                       code="mapping_not_found")
    db.delete(row)
    db.flush()
    table = cve_matching.mappings(db)
    return {"product": product, "packages": cve_matching.packages_for(product, table), "source": "shipped",
            "matching": _remap(db, product)}


def file_cve_ids(db: Session, file_ids: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for i in range(0, len(file_ids), 500):
        for fid, cid in db.execute(select(CveFile.file_id, CveFile.cve_id)
                                   .where(CveFile.file_id.in_(file_ids[i:i + 500]))):
            out[fid].append(cid)
    return out
