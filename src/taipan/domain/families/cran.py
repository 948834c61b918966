"""The cran family: R source packages (``src/contrib``) and binary packages (``bin/windows/contrib/<x.y>``,
``bin/macosx/[<build>/]contrib/<x.y>``), each partition indexed as a CRAN-like ``PACKAGES`` (and
``PACKAGES.gz``) listing the newest version of every package; older source versions are served from
``src/contrib/Archive/<pkg>/``. ``PACKAGES.rds`` (which R asks for first) is R's own serialization of
the matrix ``tools::write_PACKAGES`` saves, made on first request like ``PACKAGES.gz``; so is
``src/contrib/Meta/archive.rds``, the archived versions as CRAN lists them."""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from packageurl import PackageURL

from taipan.domain import cran
from taipan.domain.families.base import Artifact, ContentStore, HeldWhole, IndexFiles, SbomDependency, SbomInfo
from taipan.errors import InvalidInput

MEDIA_TYPES = {"PACKAGES": "text/plain; charset=utf-8", "PACKAGES.gz": "application/gzip",
               "PACKAGES.rds": "application/octet-stream", "Meta/archive.rds": "application/octet-stream"}
# PACKAGES.gz is made once per publication, at a level that keeps a CRAN-sized rebuild fast.
GZIP_LEVEL = 6


class PackagesIndex(HeldWhole):
    """One partition: every file's record, and per package name its newest file's stanza."""

    addressed = None

    def __init__(self, subdir: str) -> None:
        self.subdir = subdir
        # fn -> (name, version key, version, stanza, what Meta/archive.rds says of it, PACKAGES.rds row)
        self.records: dict[str, tuple[str, tuple[int, ...], str, bytes, dict[str, Any], tuple[bytes, ...]]] = {}
        self.by_name: dict[str, set[str]] = {}
        self.stanzas: dict[str, bytes] = {}
        self.rds_rows: dict[str, tuple[bytes, ...]] = {}  # name -> its newest file's row
        self.archived: dict[str, list[dict[str, Any]]] = {}  # name -> records of its older versions
        self._touched: set[str] = set()
        self._order: list[str] | None = None

    def apply(self, rows: Mapping[str, tuple[str, bytes] | None]) -> None:
        for fn, row in rows.items():
            old = self.records.pop(fn, None)
            if old is not None:
                self.by_name[old[0]].discard(fn)
                self._touched.add(old[0])
            if row is not None:
                name, raw = row
                record = orjson.loads(raw)
                version = str(record.get("Version", ""))
                archive = {k: record[k] for k in ("Version", "size", "Packaged") if k in record}
                self.records[fn] = (name, cran.version_key(version), version, cran.stanza(record), archive,
                                    cran.rds_row(record))
                self.by_name.setdefault(name, set()).add(fn)
                self._touched.add(name)

    def newest(self, name: str) -> str | None:
        fns = self.by_name.get(name)
        if not fns:
            return None
        return max(fns, key=lambda fn: (self.records[fn][1], self.records[fn][2]))

    def build(self, store: ContentStore) -> IndexFiles:
        for name in self._touched:
            fn = self.newest(name)
            older = [self.records[f][4] for f in self.by_name.get(name, ()) if f != fn]
            if older:
                self.archived[name] = older
            else:
                self.archived.pop(name, None)
            if fn is None:
                self.by_name.pop(name, None)
                self.rds_rows.pop(name, None)
                if self.stanzas.pop(name, None) is not None:
                    self._order = None
            else:
                if name not in self.stanzas:
                    self._order = None
                self.stanzas[name] = self.records[fn][3]
                self.rds_rows[name] = self.records[fn][5]
        self._touched.clear()
        if self._order is None:
            self._order = sorted(self.stanzas)
        stanzas = self.stanzas
        packages = b"\n".join(stanzas[n] for n in self._order)
        rows = [self.rds_rows[n] for n in self._order]
        lazy = {"PACKAGES.gz": lambda pub: gzip.compress(pub.file("PACKAGES"), GZIP_LEVEL, mtime=0),
                "PACKAGES.rds": lambda pub: gzip.compress(cran.packages_rds(rows), GZIP_LEVEL, mtime=0)}
        if self.subdir == cran.SOURCE_PARTITION:
            archived = dict(self.archived)
            lazy["Meta/archive.rds"] = lambda pub: gzip.compress(cran.archive_rds(archived), GZIP_LEVEL, mtime=0)
        return IndexFiles(files={"PACKAGES": packages}, media_types=dict(MEDIA_TYPES), lazy=lazy)


class CranFamily:
    name = "cran"
    title = "R package"
    upload_types = frozenset({"cran_source_package", "cran_binary_package", "cran", "r"})
    roots = frozenset({"src", "bin"})
    yankable = False

    def sniff(self, filename: str, head: bytes, path: Path | None = None) -> bool:
        try:
            fn = cran.parse_filename(filename)
        except InvalidInput:
            return False
        return head.startswith(b"PK\x03\x04") if fn.ext == cran.WINDOWS_EXT else head.startswith(b"\x1f\x8b")

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        pkg = cran.read_package(path, filename, subdir=subdir)
        return Artifact(family=self.name, name=pkg.name, version=pkg.version, subdir=pkg.subdir, filename=filename,
                        ckey=f"{pkg.subdir}/{filename}",
                        record=cran.make_record(pkg, md5=md5, sha256=sha256, size=size),
                        meta={"DESCRIPTION": pkg.description})

    def version_key(self, version: str) -> Any:
        return cran.version_key(version)

    def normalize_name(self, name: str) -> str:
        return name.strip()  # R package names are case-sensitive

    def install_command(self, name: str, repo_url: str) -> str:
        return f'install.packages("{name}", repos = "{repo_url}")'

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        desc = meta.get("DESCRIPTION") or {}
        name, version = str(record.get("Package")), str(record.get("Version"))
        deps = tuple(SbomDependency(name=n, requirement=req, purl=PackageURL("cran", name=n).to_string())
                     for n, req in cran.dependencies(record))
        urls = [u.strip() for u in str(desc.get("URL") or "").replace("\n", ",").split(",") if u.strip()]
        return SbomInfo(name=name, version=version, purl=PackageURL("cran", name=name, version=version).to_string(),
                        license=record.get("License"), supplier=desc.get("Maintainer"),
                        homepage=urls[0] if urls else None, summary=desc.get("Title"), dependencies=deps)

    def sbom_files(self, path: Path, filename: str) -> list[tuple[str, str, str]]:
        return cran.package_files(path, filename)

    def partition_index(self, subdir: str) -> PackagesIndex:
        return PackagesIndex(subdir)

    def file_type(self, filename: str) -> str:
        return "cran_source_package" if filename.endswith(cran.SOURCE_EXT) else "cran_binary_package"

    def package_metadata(self, name: str, latest_meta: Mapping[str, Any], subdirs: list[str],
                         channel_path: str) -> dict[str, Any]:
        desc = latest_meta.get("DESCRIPTION", {})
        urls = [u.strip() for u in str(desc.get("URL") or "").replace("\n", ",").split(",") if u.strip()]
        return {
            "name": name, "version": desc.get("Version"), "license": desc.get("License"),
            "summary": cran.one_line(desc.get("Title", "")), "description": desc.get("Description", ""),
            "home": urls[0] if urls else None, "dev_url": desc.get("BugReports"), "doc_url": None,
            "subdirs": subdirs, "install_cmd": self.install_command(name, channel_path),
        }

    def file_metadata(self, meta: Mapping[str, Any], record: Mapping[str, Any], *, filename: str,
                      channel_url: str, url: str) -> dict[str, Any]:
        return {**meta, "PACKAGES": {k: v for k, v in record.items() if k in cran.PACKAGES_FIELDS},
                "url": url, "repos": channel_url}


CRAN = CranFamily()
