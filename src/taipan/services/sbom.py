"""The SBOM of a stored artifact (``GET /api/repo/<channel>/<ckey>?sbom=download[&format=cyclonedx]``).

An SBOM document uploaded to the same channel for the same package name and version, in the asked
format, is served as uploaded (a vendor's SBOM wins over ours; an uploaded SBOM file asked for its own
SBOM gets itself). Otherwise the document is built from the family's ``sbom_info``, the file's
digests, the files inside it (hashed once per stored blob, then cached) and, in CycloneDX, the
vulnerabilities the CVE store knows.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from taipan import __version__
from taipan.db.models import File
from taipan.domain import families
from taipan.domain import sbom as sbom_doc
from taipan.errors import InvalidInput, NotFound, TaipanError
from taipan.services import cve_hooks
from taipan.services.indexing import offered
from taipan.storage.base import BlobStore

MAX_UPLOADED_SBOM = 64 * 1024 * 1024
FORMAT_ALIASES = {"spdx": "spdx", "spdx-json": "spdx", "spdx_json": "spdx", "": "spdx",
                  "cyclonedx": "cyclonedx", "cdx": "cyclonedx", "cyclonedx-json": "cyclonedx"}


@dataclass(frozen=True)
class SbomDocument:
    filename: str
    data: bytes
    media_type: str


def check_format(value: str | None) -> str:
    fmt = FORMAT_ALIASES.get((value or "").strip().lower())
    if fmt is None:
        raise InvalidInput(f"Unknown SBOM format {str(value)[:40]!r}", "Ask for format=spdx (the default) or "
                           "format=cyclonedx", code="invalid_sbom_format")
    return fmt


def no_sbom(ckey: str, why: str = "") -> NotFound:
    return NotFound(f"No SBOM for {ckey} available" + (f" ({why})" if why else ""),
                    "Check the ckey with `conda repo channel --list-files CHANNEL::PACKAGE`", code="sbom_not_found")


class _FilesCache:
    """sha256 of a stored blob -> the files inside it; hashing a package's contents once is enough."""

    def __init__(self, size: int = 32) -> None:
        self._items: OrderedDict[str, list[tuple[str, str, str]]] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: str) -> list[tuple[str, str, str]] | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: str, value: list[tuple[str, str, str]]) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


FILES_CACHE = _FilesCache()


def _files_inside(blobs: BlobStore, f: File, family: object) -> list[tuple[str, str, str]]:
    reader = getattr(family, "sbom_files", None)
    if reader is None or f.state != "active":
        return []
    cached = FILES_CACHE.get(f.sha256)
    if cached is not None:
        return cached
    path = blobs.local_path(f.sha256)
    if path is None or not path.exists():
        return []  # an object store: the SBOM says nothing of the files rather than fetch the blob
    try:
        files = list(reader(path, f.filename))
    except TaipanError:
        files = []
    FILES_CACHE.put(f.sha256, files)
    return files


def _uploaded(db: Session, blobs: BlobStore, f: File, fmt: str) -> SbomDocument | None:
    rows = db.scalars(select(File).where(File.channel_id == f.channel_id, File.family == "sbom",
                                         File.name == f.name, File.version == f.version, offered())
                      .order_by(File.created_at.desc()).limit(20))
    for row in rows:
        if json.loads(row.record).get("format") == fmt and row.state == "active" and row.size <= MAX_UPLOADED_SBOM:
            with blobs.open(row.sha256) as fh:
                return SbomDocument(row.filename, fh.read(), sbom_doc.MEDIA_TYPES[fmt])
    return None


def document(db: Session, blobs: BlobStore, *, channel_id: str, channel_url: str, base_url: str, ckey: str,
             fmt: str) -> SbomDocument:
    """The SBOM of the file ``ckey`` of a channel the caller may read (checked by the caller). A file
    withheld by the channel's CVE filters, or not published yet in a frozen channel, has none: the
    same 404 as a file the channel does not have."""
    fmt = check_format(fmt)
    f = db.scalar(select(File).where(File.channel_id == channel_id, File.ckey == ckey, offered()))
    if f is None:
        raise no_sbom(ckey)
    uploaded = _uploaded(db, blobs, f, fmt)
    if uploaded is not None:
        return uploaded
    try:
        family = families.get(f.family)
    except InvalidInput as exc:
        raise no_sbom(ckey) from exc
    record = {**json.loads(f.record), "fn": f.filename}
    info = family.sbom_info(record, f.meta or {}, channel_url=channel_url, subdir=f.subdir)
    if info is None:
        raise no_sbom(ckey, f"no {fmt} SBOM of this {family.title}")
    facts = sbom_doc.SbomFacts(
        info=info, filename=f.filename, build=str(record.get("build") or ""), sha256=f.sha256, md5=f.md5,
        size=f.size, download_url=f"{channel_url}/{f.ckey}", namespace_base=base_url,
        created=datetime.now(UTC), tool_version=__version__, files=_files_inside(blobs, f, family),
        vulnerabilities=cve_hooks.vulnerabilities_for(db, f) if fmt == "cyclonedx" else [])
    doc = sbom_doc.spdx(facts) if fmt == "spdx" else sbom_doc.cyclonedx(facts)
    return SbomDocument(sbom_doc.download_name(info, facts.build, fmt), orjson.dumps(doc, option=orjson.OPT_INDENT_2),
                        sbom_doc.MEDIA_TYPES[fmt])


def find_by_filename(db: Session, channel_id: str, filename: str) -> str | None:
    """The ckey of the one file named ``filename`` in a channel (conda-repo-cli's `sbom --package`
    sends the bare file name as the ckey); None when there is none or several. Files the channel does
    not offer now are not among them (see ``document``)."""
    ckeys = list(db.scalars(select(File.ckey).where(File.channel_id == channel_id, File.filename == filename,
                                                    offered()).limit(2)))
    return ckeys[0] if len(ckeys) == 1 else None
