"""What the CVE store knows about stored files, as the SBOM and report services ask it.

This is the seam between the CVE store and its consumers (CycloneDX ``vulnerabilities``, the CVE
columns of the download report). Until the store is wired, nothing is known: every file has no
vulnerabilities.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from taipan.db.models import File


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
    """Every CVE known for ``file`` (by its package name, version and family)."""
    return []


def cve_summaries(db: Session, file_ids: Iterable[str]) -> dict[str, CveSummary]:
    """{file id: its CVE ids and highest score} for the files with any; files without are left out."""
    return {}
