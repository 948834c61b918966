"""The python family: wheels (.whl) and sdists (.tar.gz, .zip), indexed per channel as a PEP 503/691
simple repository in the partition ``simple``: one prepared HTML and one JSON page per project,
rebuilt only for the projects a change touched, plus the root list of projects.

Archives are read without extracting anything: only the core metadata member is decompressed
(bounded); member names with absolute paths or ``..`` are refused.
"""

from __future__ import annotations

import hashlib
import html
import tarfile
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

from taipan.domain.families.base import Artifact, ContentStore, HeldWhole, IndexFiles, SbomDependency, SbomInfo
from taipan.domain.member_digests import MemberDigests
from taipan.errors import InvalidInput

PARTITION = "simple"
API_VERSION = "1.1"
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "text/html; charset=utf-8"
SDIST_EXTS = (".tar.gz", ".zip")
MAX_METADATA = 8 * 1024 * 1024  # bytes of METADATA / PKG-INFO
MAX_MEMBERS = 200_000
MAX_UNPACKED = 8 * 1024 ** 3  # what the members of a tarball may claim in total


def _bad(message: str, hint: str, code: str = "invalid_package") -> InvalidInput:
    return InvalidInput(message, hint, code=code)


def _check_member(filename: str, member: str) -> None:
    p = PurePosixPath(member.replace("\\", "/"))
    if member.startswith(("/", "\\")) or p.is_absolute() or ".." in p.parts or (member[1:2] == ":"):
        raise _bad(f"{filename} holds a member with an unsafe path ({member[:200]!r})",
                   "Archive members must be relative paths without '..'; rebuild the distribution",
                   code="unsafe_archive")


def _read_wheel_metadata(path: Path, filename: str) -> bytes:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _bad(f"{filename} has more than {MAX_MEMBERS} members", "Rebuild the wheel")
            found = []
            for info in infos:
                _check_member(filename, info.filename)
                parts = info.filename.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":
                    found.append(info)
            if len(found) != 1:
                raise _bad(f"{filename} has {'no' if not found else 'more than one'} *.dist-info/METADATA",
                           "A wheel holds exactly one <name>-<version>.dist-info/METADATA; rebuild it with "
                           "`python -m build`", code="missing_metadata")
            if found[0].file_size > MAX_METADATA:
                raise _bad(f"The METADATA of {filename} is larger than {MAX_METADATA} bytes",
                           "Shorten the long description", code="invalid_metadata")
            with zf.open(found[0]) as fh:
                return fh.read(MAX_METADATA + 1)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
        raise _bad(f"{filename} is not a readable wheel (zip) archive: {exc}",
                   "Build the wheel again; the file may be damaged", code="invalid_archive") from exc


def _sdist_pkg_info_member(name: str) -> bool:
    parts = name.strip("/").split("/")
    return len(parts) == 2 and parts[1] == "PKG-INFO"


def _read_sdist_metadata(path: Path, filename: str) -> bytes:
    if filename.endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as zf:
                found = []
                for i, info in enumerate(zf.infolist()):
                    if i > MAX_MEMBERS:
                        raise _bad(f"{filename} has more than {MAX_MEMBERS} members", "Rebuild the sdist")
                    _check_member(filename, info.filename)
                    if _sdist_pkg_info_member(info.filename):
                        found.append(info)
                if not found:
                    raise _missing_pkg_info(filename)
                with zf.open(found[0]) as fh:
                    return fh.read(MAX_METADATA + 1)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise _bad(f"{filename} is not a readable zip archive: {exc}",
                       "Build the sdist again with `python -m build --sdist`", code="invalid_archive") from exc
    try:
        with tarfile.open(path, "r:gz") as tf:
            data = None
            total = 0
            for i, member in enumerate(tf):
                if i > MAX_MEMBERS:
                    raise _bad(f"{filename} has more than {MAX_MEMBERS} members", "Rebuild the sdist")
                _check_member(filename, member.name)
                if member.issym() or member.islnk():
                    _check_member(filename, member.linkname)
                    if member.linkname.startswith("/"):
                        raise _bad(f"{filename} holds a link outside the archive", "Rebuild the sdist",
                                   code="unsafe_archive")
                total += max(member.size, 0)
                if total > MAX_UNPACKED:
                    raise _bad(f"{filename} unpacks to more than {MAX_UNPACKED} bytes", "Rebuild the sdist",
                               code="invalid_archive")
                if data is None and member.isfile() and _sdist_pkg_info_member(member.name):
                    if member.size > MAX_METADATA:
                        raise _bad(f"The PKG-INFO of {filename} is larger than {MAX_METADATA} bytes",
                                   "Shorten the long description", code="invalid_metadata")
                    fh = tf.extractfile(member)
                    data = fh.read() if fh is not None else None
            if data is None:
                raise _missing_pkg_info(filename)
            return data
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise _bad(f"{filename} is not a readable .tar.gz archive: {exc}",
                   "Build the sdist again with `python -m build --sdist`", code="invalid_archive") from exc


def _missing_pkg_info(filename: str) -> InvalidInput:
    return _bad(f"{filename} has no <name>-<version>/PKG-INFO", "Build the sdist with `python -m build --sdist`",
                code="missing_metadata")


def parse_filename(filename: str) -> tuple[str, str, str]:
    """(normalized name, version, packagetype) from a wheel or sdist file name; InvalidInput if bad."""
    if filename.endswith(".whl"):
        try:
            name, version, _build, _tags = parse_wheel_filename(filename)
        except (InvalidWheelFilename, InvalidVersion) as exc:
            raise _bad(f"Invalid wheel file name {filename!r}: {exc}",
                       "Wheels are named <name>-<version>(-<build>)?-<python>-<abi>-<platform>.whl "
                       "(PEP 427/491)", code="invalid_filename") from exc
        return str(name), str(version), "bdist_wheel"
    if filename.endswith(SDIST_EXTS):
        try:
            name, version = parse_sdist_filename(filename)
        except (InvalidSdistFilename, InvalidVersion) as exc:
            raise _bad(f"Invalid sdist file name {filename!r}: {exc}",
                       "Source distributions are named <name>-<version>.tar.gz (PEP 625)",
                       code="invalid_filename") from exc
        return str(name), str(version), "sdist"
    raise _bad(f"{filename} is neither a wheel nor an sdist",
               "Python distributions end in .whl, .tar.gz or .zip", code="invalid_filename")


def parse_metadata(raw: bytes, filename: str) -> dict[str, Any]:
    """The core metadata fields we use; InvalidInput when a required one is missing or unparsable."""
    if len(raw) > MAX_METADATA:
        raise _bad(f"The metadata of {filename} is larger than {MAX_METADATA} bytes", "Shorten the description",
                   code="invalid_metadata")
    try:
        fields, _unparsed = parse_email(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"The metadata of {filename} cannot be read: {exc}", "Rebuild the distribution",
                   code="invalid_metadata") from exc
    name, version = fields.get("name"), fields.get("version")
    if not name or not version:
        raise _bad(f"The metadata of {filename} has no {'Name' if not name else 'Version'}",
                   "Core metadata needs Metadata-Version, Name and Version; rebuild the distribution",
                   code="invalid_metadata")
    try:
        Version(version)
    except InvalidVersion as exc:
        raise _bad(f"The version {version!r} in the metadata of {filename} is not a PEP 440 version",
                   "Use a version such as 1.2.3", code="invalid_metadata") from exc
    rp = fields.get("requires_python")
    if rp:
        try:
            SpecifierSet(rp)
        except InvalidSpecifier as exc:
            raise _bad(f"Requires-Python {rp!r} in {filename} is not a valid specifier",
                       "Use a specifier such as >=3.9", code="invalid_metadata") from exc
    return dict(fields)


def _wheel_or_sdist(filename: str) -> bool:
    return filename.endswith((".whl", *SDIST_EXTS))


def _has_pkg_info(path: Path, filename: str) -> bool:
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                return any(_sdist_pkg_info_member(n) for n in zf.namelist()[:MAX_MEMBERS])
        with tarfile.open(path, "r:gz") as tf:
            for i, member in enumerate(tf):
                if i > 10_000:
                    return False
                if _sdist_pkg_info_member(member.name):
                    return True
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False
    return False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _version_key(version: str) -> Any:
    try:
        return (1, Version(version))
    except InvalidVersion:
        return (0, version)


# -- the simple index ---------------------------------------------------------------------------------

def _file_entry_json(fn: str, r: Mapping[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"filename": fn, "url": fn, "hashes": {"sha256": r["sha256"]} if r.get("sha256") else {}}
    if r.get("requires_python"):
        entry["requires-python"] = r["requires_python"]
    if r.get("metadata_sha256"):
        entry["core-metadata"] = {"sha256": r["metadata_sha256"]}
        entry["dist-info-metadata"] = {"sha256": r["metadata_sha256"]}
    entry["size"] = r.get("size", 0)
    if r.get("upload_time"):
        entry["upload-time"] = r["upload_time"]
    yanked = r.get("yanked")
    entry["yanked"] = (yanked or True) if yanked is not None else False
    return entry


def _file_entry_html(fn: str, r: Mapping[str, Any]) -> str:
    q = html.escape
    attrs = [f'href="{q(fn)}#sha256={q(r["sha256"])}"' if r.get("sha256") else f'href="{q(fn)}"']
    if r.get("requires_python"):
        attrs.append(f'data-requires-python="{q(r["requires_python"])}"')
    if r.get("metadata_sha256"):
        attrs.append(f'data-dist-info-metadata="sha256={r["metadata_sha256"]}"')
        attrs.append(f'data-core-metadata="sha256={r["metadata_sha256"]}"')
    if r.get("yanked") is not None:
        attrs.append(f'data-yanked="{q(r["yanked"])}"')
    return f'    <a {" ".join(attrs)}>{q(fn)}</a><br/>\n'


def project_pages(project: str, records: Mapping[str, Mapping[str, Any]]) -> tuple[bytes, bytes]:
    """(HTML, JSON) of one project's page from its files' records."""
    fns = sorted(records, key=lambda fn: (_version_key(records[fn].get("version", "")), fn))
    versions = sorted({records[fn].get("version", "") for fn in fns}, key=_version_key)
    body = "".join(_file_entry_html(fn, records[fn]) for fn in fns)
    page = (f'<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
            f"    <title>Links for {html.escape(project)}</title>\n  </head>\n  <body>\n"
            f"    <h1>Links for {html.escape(project)}</h1>\n{body}  </body>\n</html>\n").encode()
    doc = {"meta": {"api-version": API_VERSION}, "name": project, "versions": versions,
           "files": [_file_entry_json(fn, records[fn]) for fn in fns]}
    return page, orjson.dumps(doc)


def root_pages(projects: list[str]) -> tuple[bytes, bytes]:
    links = "".join(f'    <a href="{html.escape(p)}/">{html.escape(p)}</a><br/>\n' for p in projects)
    page = (f'<!DOCTYPE html>\n<html>\n  <head>\n    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
            f"    <title>Simple index</title>\n  </head>\n  <body>\n{links}  </body>\n</html>\n").encode()
    doc = {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in projects]}
    return page, orjson.dumps(doc)


def _etag(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


class SimpleIndex(HeldWhole):
    """The ``simple`` partition of one channel: per-project pages, rebuilt for touched projects only."""

    addressed = None

    def __init__(self, subdir: str) -> None:
        self.subdir = subdir
        self.records: dict[str, dict[str, dict[str, Any]]] = {}  # project -> filename -> record
        self.project_of: dict[str, str] = {}
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self._touched: set[str] = set()
        self._projects_changed = True

    def apply(self, rows: Mapping[str, tuple[str, bytes] | None]) -> None:
        for fn, row in rows.items():
            old = self.project_of.pop(fn, None)
            if old is not None:
                self.records[old].pop(fn, None)
                self._touched.add(old)
            if row is not None:
                name, record = row
                project = canonicalize_name(name)
                self.project_of[fn] = project
                if project not in self.records:
                    self._projects_changed = True
                self.records.setdefault(project, {})[fn] = orjson.loads(record)
                self._touched.add(project)

    def build(self, store: ContentStore) -> IndexFiles:
        for project in self._touched:
            files = self.records.get(project)
            if not files:
                self.records.pop(project, None)
                for ext in ("html", "json"):
                    self.files.pop(f"{project}/index.{ext}", None)
                    self.etags.pop(f"{project}/index.{ext}", None)
                self._projects_changed = True
                continue
            page, doc = project_pages(project, files)
            for key, data in ((f"{project}/index.html", page), (f"{project}/index.json", doc)):
                self.files[key] = data
                self.etags[key] = _etag(data)
        self._touched.clear()
        if self._projects_changed or "index.html" not in self.files:
            page, doc = root_pages(sorted(self.records))
            self.files["index.html"], self.files["index.json"] = page, doc
            self.etags["index.html"], self.etags["index.json"] = _etag(page), _etag(doc)
            self._projects_changed = False
        media = {k: (HTML_TYPE if k.endswith(".html") else JSON_TYPE) for k in self.files}
        return IndexFiles(files=dict(self.files), media_types=media, etags=dict(self.etags))


# -- the family ---------------------------------------------------------------------------------------

class PythonFamily:
    name = "python"
    title = "Python distribution"
    upload_types = frozenset({"bdist_wheel", "sdist", "pypi", "python"})
    roots = frozenset({PARTITION})
    yankable = True

    def sniff(self, filename: str, head: bytes, path: Path | None = None) -> bool:
        if filename.endswith(".whl"):
            return head.startswith(b"PK")
        if filename.endswith(".zip") and head.startswith(b"PK"):
            return path is None or _has_pkg_info(path, filename)
        if filename.endswith(".tar.gz") and head.startswith(b"\x1f\x8b"):
            return path is None or _has_pkg_info(path, filename)
        return False

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        name, version, packagetype = parse_filename(filename)
        raw = (_read_wheel_metadata(path, filename) if packagetype == "bdist_wheel"
               else _read_sdist_metadata(path, filename))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _bad(f"The metadata of {filename} is not UTF-8", "Core metadata is UTF-8 text; rebuild the "
                       "distribution", code="invalid_metadata") from exc
        fields = parse_metadata(raw, filename)
        if canonicalize_name(fields["name"]) != name:
            raise _bad(f"The metadata of {filename} names the project {fields['name']!r}, not {name!r}",
                       "The file name must start with the project name (normalized as in PEP 503)",
                       code="filename_mismatch")
        if Version(fields["version"]) != Version(version):
            raise _bad(f"The metadata of {filename} has version {fields['version']!r}, the file name {version!r}",
                       "Rebuild the distribution; do not rename it", code="filename_mismatch")
        record = {
            "name": fields["name"], "version": str(Version(fields["version"])), "filename": filename,
            "packagetype": packagetype, "sha256": sha256, "md5": md5, "size": size,
            "requires_python": fields.get("requires_python") or None,
            "metadata_sha256": hashlib.sha256(raw).hexdigest(), "upload_time": _now(),
        }
        meta = {"METADATA": text, **_summary_fields(fields)}
        return Artifact(family=self.name, name=name, version=record["version"], subdir=PARTITION,
                        filename=filename, ckey=f"{PARTITION}/{name}/{filename}", record=record, meta=meta)

    def version_key(self, version: str) -> Any:
        return _version_key(version)

    def normalize_name(self, name: str) -> str:
        return str(canonicalize_name(name.strip()))

    def install_command(self, name: str, repo_url: str) -> str:
        return f"pip install --index-url {repo_url.rstrip('/')}/simple/ {name}"

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        name = canonicalize_name(str(record.get("name") or ""))
        version = str(record.get("version") or "")
        deps = []
        for req in meta.get("requires_dist") or ():
            try:
                dep = canonicalize_name(Requirement(req).name)
            except InvalidRequirement:
                continue
            deps.append(SbomDependency(name=dep, requirement=req, purl=f"pkg:pypi/{dep}"))
        return SbomInfo(name=name, version=version, purl=f"pkg:pypi/{name}@{version}",
                        license=meta.get("license_expression") or meta.get("license"),
                        supplier=meta.get("author"), homepage=meta.get("home"), summary=meta.get("summary"),
                        dependencies=tuple(deps))

    def sbom_files(self, path: Path, filename: str) -> list[tuple[str, str, str]]:
        """The files inside a wheel (zip) or sdist (tarball): (path, sha1, sha256), bounded."""
        found = MemberDigests(MAX_UNPACKED, lambda: InvalidInput(
            f"{filename} unpacks to more than {MAX_UNPACKED} bytes", "", code="too_large_decompressed"))
        if filename.endswith(".whl"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist()[:MAX_MEMBERS]:
                    if not info.is_dir():
                        with zf.open(info) as fh:
                            found.add(info.filename, fh)
        else:
            with tarfile.open(path, mode="r:*") as tar:
                for n, member in enumerate(tar):
                    if n >= MAX_MEMBERS:
                        break
                    if member.isfile() and (fh := tar.extractfile(member)) is not None:
                        found.add(member.name, fh)
        return found.files

    def partition_index(self, subdir: str) -> SimpleIndex | None:
        return SimpleIndex(subdir) if subdir == PARTITION else None

    def file_type(self, filename: str) -> str:
        return "bdist_wheel" if filename.endswith(".whl") else "sdist"

    def package_metadata(self, name: str, latest_meta: Mapping[str, Any], subdirs: list[str],
                         channel_path: str) -> dict[str, Any]:
        return {
            "name": name, "version": latest_meta.get("version"), "summary": latest_meta.get("summary") or "",
            "description": "", "license": latest_meta.get("license_expression") or latest_meta.get("license"),
            "home": latest_meta.get("home"), "requires_python": latest_meta.get("requires_python"),
            "requires_dist": latest_meta.get("requires_dist") or [], "subdirs": subdirs,
            "install_cmd": f"pip install --index-url <server>/api/repo/{channel_path}/simple/ {name}",
        }

    def file_metadata(self, meta: Mapping[str, Any], record: Mapping[str, Any], *, filename: str,
                      channel_url: str, url: str) -> dict[str, Any]:
        return {**{k: v for k, v in meta.items() if k != "METADATA"}, "record": {**record, "url": url}}


def _summary_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    urls = fields.get("project_urls") or {}
    home = fields.get("home_page") or next((v for k, v in urls.items() if k.lower() in ("homepage", "home")), None)
    return {
        "name": fields.get("name"), "version": fields.get("version"), "summary": fields.get("summary"),
        "license": fields.get("license"), "license_expression": fields.get("license_expression"),
        "requires_python": fields.get("requires_python"), "requires_dist": list(fields.get("requires_dist") or []),
        "author": fields.get("author") or fields.get("author_email"), "home": home,
        "classifiers": list(fields.get("classifiers") or []),
    }


PYTHON = PythonFamily()
