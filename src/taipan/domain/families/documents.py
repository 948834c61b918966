"""What the document-like families (notebooks, environment files, anaconda-projects, stored SBOMs)
share: one file per artifact, served as stored under the family's root, no index to publish.

Their files carry no version of their own unless the document declares one (a notebook's
``metadata.version``, a project's ``version``); otherwise the version is ``0``. A file's ckey is
``<root>/<name>/<filename>`` (notebooks: ``jupyter/<name>.ipynb``, the URL conda-repo-cli downloads),
unique in a channel: uploading another file under the same name means removing the old one first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from packageurl import PackageURL

from taipan.domain import repodata as rd
from taipan.domain.detect import MAX_TEXT, detect
from taipan.domain.families.base import SbomDependency, SbomInfo
from taipan.errors import InvalidInput

# Documents are read whole; this bounds the memory one upload can take.
MAX_DOCUMENT = 32 * 1024 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$")
_DEP_NAME_RE = re.compile(r"^\s*([A-Za-z0-9_][A-Za-z0-9_.\-]*)")


def read_text(path: Path, filename: str, what: str) -> str:
    size = path.stat().st_size
    if size > MAX_DOCUMENT:
        raise InvalidInput(f"{filename} is too large for {what} ({size} bytes)",
                           f"{what[0].upper() + what[1:]} files may be at most {MAX_DOCUMENT} bytes",
                           code="document_too_large")
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{filename} is not UTF-8 text", f"Save {what} as UTF-8",
                           code="invalid_document") from exc


def load_yaml(text: str, filename: str, what: str) -> dict[str, Any]:
    import yaml  # here: a server process that never reads an environment file does not hold it

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidInput(f"{filename} is not valid YAML{where}", f"Fix the syntax of {what}",
                           code="invalid_document") from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"{filename} is not {what}: its top level is not a mapping",
                           f"{what[0].upper() + what[1:]} is a YAML mapping with a name", code="invalid_document")
    return doc


def check_name(name: Any, filename: str, hint: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name.strip()) or ".." in name:
        raise InvalidInput(f"{filename} has no usable name ({str(name)[:60]!r})", hint, code="invalid_name")
    return name.strip()


def version_of(value: Any) -> str:
    text = str(value).strip() if value is not None and not isinstance(value, (dict, list)) else ""
    return text if text and len(text) <= 100 and _NAME_RE.match(text) else "0"


def sniff_kind(kind: str, filename: str, head: bytes, path: Path | None) -> bool:
    """Whether the file (the spooled one, when given) is content of this ``detect`` kind."""
    if path is not None:
        try:
            if path.stat().st_size > MAX_TEXT and not head.startswith((b"PK", b"\x1f\x8b", b"BZh")):
                return False
            with open(path, "rb") as fh:
                found = detect(fh, filename)
        except OSError:
            return False
        return found is not None and found.kind == kind
    return False


def conda_dependency(spec: str) -> SbomDependency | None:
    """A conda MatchSpec as written in an environment file: ``numpy>=1.2``, ``conda-forge::numpy 1.2``."""
    text = spec.strip()
    m = _DEP_NAME_RE.match(text.split("::", 1)[-1])
    if not m:
        return None
    name = m.group(1).lower()
    return SbomDependency(name=name, requirement=text, purl=PackageURL("conda", name=name).to_string())


def pypi_dependency(spec: str) -> SbomDependency | None:
    m = _DEP_NAME_RE.match(spec)
    if not m:
        return None
    name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
    return SbomDependency(name=name, requirement=spec.strip(), purl=PackageURL("pypi", name=name).to_string())


def environment_dependencies(deps: Any) -> tuple[SbomDependency, ...]:
    """conda specs, and pip requirements under ``- pip: [...]``, of an environment or project file."""
    out: list[SbomDependency] = []
    for dep in deps if isinstance(deps, list) else ():
        if isinstance(dep, str):
            found = conda_dependency(dep)
            if found:
                out.append(found)
        elif isinstance(dep, dict):
            for pip in dep.get("pip") or ():
                if isinstance(pip, str) and not pip.startswith("-"):
                    found = pypi_dependency(pip)
                    if found:
                        out.append(found)
    return tuple(out)


def generic_purl(family: str, name: str, version: str, channel_url: str) -> str:
    return PackageURL("generic", namespace=family, name=name, version=version,
                      qualifiers={"download_url": channel_url}).to_string()


def environment_sbom(family: str, record: Mapping[str, Any], meta: Mapping[str, Any], channel_url: str) -> SbomInfo:
    """The SBOM package of an environment file or a project: its conda and pip dependencies."""
    name, version = str(record.get("name")), str(record.get("version"))
    deps = environment_dependencies([*(record.get("dependencies") or []), {"pip": record.get("pip") or []}])
    return SbomInfo(name=name, version=version, purl=generic_purl(family, name, version, channel_url),
                    summary=meta.get("summary") or None, dependencies=deps)


class DocumentFamily:
    """Defaults for one-file families without an index."""

    name = ""
    title = ""
    kind = ""  # the taipan.domain.detect kind
    upload_types: frozenset[str] = frozenset()
    roots: frozenset[str] = frozenset()
    yankable = False
    type_name = ""

    def sniff(self, filename: str, head: bytes, path: Path | None = None) -> bool:
        return sniff_kind(self.kind, filename, head, path)

    def version_key(self, version: str) -> Any:
        return rd.version_key(version)

    def sbom_files(self, path: Path, filename: str) -> list[tuple[str, str, str]]:
        return []

    def normalize_name(self, name: str) -> str:
        return name.strip()

    def partition_index(self, subdir: str) -> None:
        return None

    def file_type(self, filename: str) -> str:
        return self.type_name

    def install_command(self, name: str, repo_url: str) -> str:
        return f"conda repo download --channel {repo_url.rstrip('/').rsplit('/api/repo/', 1)[-1]} " \
               f"--family {self.name} {name}"

    def package_metadata(self, name: str, latest_meta: Mapping[str, Any], subdirs: list[str],
                         channel_path: str) -> dict[str, Any]:
        summary = latest_meta.get("summary") or ""
        return {"name": name, "summary": summary, "description": latest_meta.get("description") or "",
                "subdirs": subdirs, "platforms": latest_meta.get("platforms") or [],
                "install_cmd": self.install_command(name, f"/api/repo/{channel_path}")}

    def file_metadata(self, meta: Mapping[str, Any], record: Mapping[str, Any], *, filename: str,
                      channel_url: str, url: str) -> dict[str, Any]:
        return {**meta, "repodata_record.json": {**record, "fn": filename, "channel": channel_url, "url": url}}
