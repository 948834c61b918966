"""What the CVE store knows about stored files, as the SBOM and report services ask it.

This is the seam between the CVE store and its consumers (CycloneDX ``vulnerabilities``, the CVE
columns of the download report). Answers come from the CVE store's matches (``cve_files``), so they
are what `conda-repo cves --show-files` and the files' ``cve_score``/``cve_status`` say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from taipan.db.cves import Cve, CveFile
from taipan.db.models import File
from taipan.domain import cve as rules


@dataclass(frozen=True)
class Vulnerability:
    """One CVE known to affect a file. ``method`` is a CycloneDX rating method (CVSSv31, CVSSv3,
    CVSSv2); ``severity`` is critical/high/medium/low/none/unknown."""

    id: str
    description: str = ""
    score: float | None = None
    severity: str | None = None
    method: str | None = None
    vector: str | None = None
    status: str | None = None  # reported, active, cleared, mitigated, disputed
    published: str | None = None  # ISO 8601
    url: str | None = None


@dataclass(frozen=True)
class CveSummary:
    """The CVE ids of a file and the highest score among them (for reports and listings)."""

    ids: tuple[str, ...] = ()
    max_score: float | None = None


def vulnerabilities_for(db: Session, file: File) -> list[Vulnerability]:
    """Every CVE known for ``file`` (by its package name, version and family), highest score first."""
    rows = db.scalars(select(Cve).join(CveFile, CveFile.cve_id == Cve.id).where(CveFile.file_id == file.id)
                      .order_by(Cve.score.desc().nulls_last(), Cve.id))
    return [_vulnerability(c) for c in rows]


def _vulnerability(c: Cve) -> Vulnerability:
    method = vector = None
    if c.score_type == "CVSS3" and c.cvss3:
        data = c.cvss3.get("cvssV3") or {}
        method = "CVSSv31" if str(data.get("version")) == "3.1" else "CVSSv3"
        vector = data.get("vectorString")
    elif c.score_type == "CVSS2" and c.cvss2:
        method, vector = "CVSSv2", (c.cvss2.get("cvssV2") or {}).get("vectorString")
    url = (f"https://nvd.nist.gov/vuln/detail/{c.id}" if c.id.startswith("CVE-")
           else f"https://osv.dev/vulnerability/{c.id}")
    return Vulnerability(id=c.id, description=c.description, score=c.score,
                         severity=rules.severity(c.score) or "unknown", method=method, vector=vector,
                         status=c.status, published=c.published_at.isoformat() if c.published_at else None,
                         url=url)


def cve_summaries(db: Session, file_ids: Iterable[str]) -> dict[str, CveSummary]:
    """{file id: its CVE ids and highest score} for the files with any; files without are left out.
    The score is the file's ``cve_score``: cleared and disputed CVEs do not count."""
    ids = list(dict.fromkeys(file_ids))
    found: dict[str, list[tuple[str, float | None, str]]] = {}
    for i in range(0, len(ids), 500):
        q = (select(CveFile.file_id, Cve.id, Cve.score, Cve.status).join(Cve, Cve.id == CveFile.cve_id)
             .where(CveFile.file_id.in_(ids[i:i + 500])))
        for fid, cid, score, status in db.execute(q):
            found.setdefault(fid, []).append((cid, score, status))
    return {fid: CveSummary(ids=tuple(sorted(c for c, _, _ in cves)),
                            max_score=rules.file_summary((s, st) for _, s, st in cves)[0])
            for fid, cves in found.items()}
