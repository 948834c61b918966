"""Importing CVE data: NVD CVE API 2.0 feeds and OSV advisories, streamed, in one transaction.

Readers yield ``CveRecord``s from a file (plain, ``.gz`` or an OSV ``.zip``) or a directory of them;
NVD feeds are streamed with ijson, so memory stays bounded whatever the feed's size. ``import_records``
writes them in batches: a source of a CVE (NVD, or one OSV advisory) is rewritten only when its
modification date moves, so re-imports are idempotent and cheap. Any malformed input raises before
the caller commits: nothing is stored from a failed import.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import ijson
from sqlalchemy import delete, insert, select, tuple_
from sqlalchemy.orm import Session

from taipan.db.cves import Cve, CveAffect
from taipan.db.models import utcnow
from taipan.domain import cve as rules
from taipan.errors import InvalidInput, NotFound
from taipan.services import cve_matching

BATCH = 1_000
SUFFIXES = (".json", ".json.gz", ".zip")
MAX_OSV_MEMBER = 50 * 1024 * 1024


def _invalid(where: str, why: str) -> InvalidInput:
    return InvalidInput(f"{where}: {why}", "Import NVD CVE API 2.0 JSON feeds ({\"vulnerabilities\": [...]}, "
                        "plain or .gz) or OSV JSON (one advisory, a list, or an osv.dev ecosystem .zip); "
                        "nothing was imported", code="invalid_cve_file")


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb")


def _shape(fh: IO[bytes]) -> str:
    """'nvd', 'osv' (one advisory) or 'osv-list', from the first top-level tokens."""
    for prefix, event, value in ijson.parse(fh):
        if prefix == "" and event == "start_array":
            return "osv-list"
        if prefix == "" and event == "map_key":
            if value in ("vulnerabilities", "resultsPerPage", "totalResults", "startIndex", "format"):
                return "nvd"
            if value in ("id", "modified", "affected", "schema_version", "aliases", "published", "details",
                         "summary"):
                return "osv"
        if prefix == "" and event not in ("start_map", "map_key"):
            break
    raise ValueError("neither an NVD feed nor an OSV advisory")


def read_file(path: Path) -> Iterator[rules.CveRecord]:
    where = str(path)
    try:
        if path.name.endswith(".zip"):
            yield from _read_zip(path)
            return
        with _open(path) as fh:
            shape = _shape(fh)
        with _open(path) as fh:
            if shape == "nvd":
                for item in ijson.items(fh, "vulnerabilities.item", use_float=True):
                    yield rules.parse_nvd(item)
            elif shape == "osv-list":
                for item in ijson.items(fh, "item", use_float=True):
                    yield rules.parse_osv(item)
            else:
                yield rules.parse_osv(json.load(fh))
    except InvalidInput as exc:
        raise _invalid(where, exc.message) from exc
    except (ijson.JSONError, ValueError, OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise _invalid(where, f"not valid JSON ({str(exc)[:200]})") from exc


def _read_zip(path: Path) -> Iterator[rules.CveRecord]:
    with zipfile.ZipFile(path) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if info.is_dir() or not info.filename.endswith(".json"):
                continue
            if info.file_size > MAX_OSV_MEMBER:
                raise ValueError(f"{info.filename} is larger than {MAX_OSV_MEMBER} bytes")
            with zf.open(info) as member:
                data = json.load(io.TextIOWrapper(member, encoding="utf-8"))
            try:
                if isinstance(data, list):
                    for item in data:
                        yield rules.parse_osv(item)
                else:
                    yield rules.parse_osv(data)
            except InvalidInput as exc:
                raise InvalidInput(f"{info.filename}: {exc.message}", exc.hint, code=exc.code) from exc


def expand(paths: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            if not found:
                raise NotFound(f"No .json, .json.gz or .zip files in {path}", "Point at a feed file or a "
                               "directory of them", code="no_cve_files")
            out.extend(found)
        elif path.is_file():
            out.append(path)
        else:
            raise NotFound(f"No such file: {path}", "Check the path", code="no_cve_files")
    return out


def read_paths(paths: Iterable[Path]) -> Iterator[rules.CveRecord]:
    for path in expand(paths):
        yield from read_file(path)


# --- writing ------------------------------------------------------------------------------------------

def _affect_rows(rec: rules.CveRecord, table: dict[str, list[str]]) -> list[dict[str, Any]]:
    rows = []
    for a in rec.affects:
        packages = cve_matching.packages_for(a.key, table) if a.ecosystem == "cpe" else [a.key]
        for pkg in dict.fromkeys(packages):
            rows.append({"cve_id": rec.id, "source": rec.source, "ecosystem": a.ecosystem, "product": a.key,
                         "package": rules.ecosystem_key(a.ecosystem, pkg)[:255], "spec": a.spec})
    return rows


def _apply(db: Session, batch: list[rules.CveRecord], table: dict[str, list[str]],
           touched: set[tuple[str, str]], counts: dict[str, int]) -> None:
    newest: dict[tuple[str, str], rules.CveRecord] = {}
    for rec in batch:
        k = (rec.id, rec.source)
        if k not in newest or rec.modified > newest[k].modified:
            newest[k] = rec
    ids = sorted({k[0] for k in newest})
    known = dict(db.execute(select(Cve.id, Cve.sources).where(Cve.id.in_(ids))).all())
    changed: list[rules.CveRecord] = []
    for (cve_id, source), rec in newest.items():
        stored = (known[cve_id] or {}).get(source) if cve_id in known else None
        if stored is not None and rules.parse_time(stored, "stored date") >= rec.modified:
            counts["unchanged"] += 1
        else:
            changed.append(rec)
    if not changed:
        return
    # New CVEs go in through the driver; CVEs that exist are updated as objects (fewer, and merged).
    again = sorted({r.id for r in changed} & set(known))
    existing = {c.id: c for c in db.scalars(select(Cve).where(Cve.id.in_(again)))} if again else {}
    fresh: dict[str, dict[str, Any]] = {}
    now = utcnow()
    for rec in changed:
        row: Any = existing.get(rec.id)
        if row is None and rec.id not in fresh:
            counts["added"] += 1
            fresh[rec.id] = {"id": rec.id, "description": "", "published_at": None, "modified_at": rec.modified,
                             "score": None, "score_type": None, "cvss2": None, "cvss3": None, "cvss4": None,
                             "sources": {}, "aliases": [], "status": "reported", "status_note": "",
                             "status_by": None, "status_at": None, "updated_at": now}
        elif row is not None:
            counts["updated"] += 1
        _merge(row if row is not None else fresh[rec.id], rec, now)
    if fresh:
        db.execute(insert(Cve.__table__), list(fresh.values()))
    db.flush()
    keys = [(r.id, r.source) for r in changed]
    conn = db.connection()
    if existing:
        touched.update(conn.execute(select(CveAffect.ecosystem, CveAffect.package).where(
            tuple_(CveAffect.cve_id, CveAffect.source).in_(keys))).all())
        conn.execute(delete(CveAffect).where(tuple_(CveAffect.cve_id, CveAffect.source).in_(keys)))
    rows = [row for rec in changed for row in _affect_rows(rec, table)]
    if rows:
        conn.execute(insert(CveAffect.__table__), rows)
    touched.update((r["ecosystem"], r["package"]) for r in rows)
    for obj in existing.values():
        db.expunge(obj)


class _Dict:
    """Attribute access over a row dict, so new rows and ORM objects merge alike."""

    def __init__(self, d: dict[str, Any]) -> None:
        object.__setattr__(self, "d", d)

    def __getattr__(self, name: str) -> Any:
        return self.d[name]

    def __setattr__(self, name: str, value: Any) -> None:
        self.d[name] = value


def _merge(target: Any, rec: rules.CveRecord, now: Any) -> None:
    row = _Dict(target) if isinstance(target, dict) else target
    sources = dict(row.sources or {})
    sources[rec.source] = rec.modified.isoformat()
    row.sources = sources
    row.aliases = sorted(set(row.aliases or []) | set(rec.aliases) - {rec.id})
    row.modified_at = max(row.modified_at, rec.modified) if row.modified_at else rec.modified
    row.updated_at = now
    if rec.source == "nvd":
        row.description = rec.description
        row.published_at = rec.published or row.published_at
        row.cvss2, row.cvss3, row.cvss4 = rec.cvss2, rec.cvss3, rec.cvss4
        row.score, row.score_type = rec.score, rec.score_type
    elif "nvd" not in sources:  # OSV fills in only what NVD does not say
        row.description = row.description or rec.description
        row.published_at = row.published_at or rec.published


def import_records(db: Session, records: Iterable[rules.CveRecord], *, match: bool = True) -> dict[str, Any]:
    """Write records (the caller commits; on an exception it must roll back). Returns counts."""
    table = cve_matching.mappings(db)
    counts = {"records": 0, "added": 0, "updated": 0, "unchanged": 0}
    touched: set[tuple[str, str]] = set()
    batch: list[rules.CveRecord] = []
    for rec in records:
        counts["records"] += 1
        batch.append(rec)
        if len(batch) >= BATCH:
            _apply(db, batch, table, touched, counts)
            batch = []
    if batch:
        _apply(db, batch, table, touched, counts)
    result: dict[str, Any] = dict(counts)
    if match and touched:
        result["matching"] = cve_matching.match_names(db, touched)
    return result


def import_paths(db: Session, paths: Iterable[Path], *, match: bool = True) -> dict[str, Any]:
    return import_records(db, read_paths(paths), match=match)
