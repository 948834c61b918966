"""The anaconda_project family: anaconda-project archives (``.zip``, ``.tar.gz``, ``.tar.bz2``; what
``anaconda-project archive`` writes) holding ``anaconda-project.yml`` at their top or in one top
directory, or a bare ``anaconda-project.yml``; served at ``/api/repo/<channel>/projects/<name>/<filename>``."""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taipan.domain.detect import MAX_MEMBERS, PROJECT_FILES
from taipan.domain.families.base import Artifact, SbomInfo
from taipan.domain.families.documents import (
    DocumentFamily,
    check_name,
    environment_sbom,
    load_yaml,
    read_text,
    version_of,
)
from taipan.errors import InvalidInput

ROOT = "projects"
WHAT = "an anaconda-project file"
MAX_PROJECT_FILE = 4 * 1024 * 1024
ARCHIVE_EXTS = (".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")


def _is_project_member(name: str) -> bool:
    parts = [p for p in name.replace("\\", "/").split("/") if p and p != "."]
    return 1 <= len(parts) <= 2 and parts[-1] in PROJECT_FILES


def _bad_archive(filename: str, why: str) -> InvalidInput:
    return InvalidInput(f"{filename} is not an anaconda-project archive: {why}",
                        "Make one with `anaconda-project archive NAME.zip` in the project directory",
                        code="invalid_project")


def _read_member(path: Path, filename: str) -> str:
    data: bytes | None = None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()[:MAX_MEMBERS]
            found = sorted((i for i in infos if _is_project_member(i.filename)), key=lambda i: i.filename.count("/"))
            if found:
                if found[0].file_size > MAX_PROJECT_FILE:
                    raise _bad_archive(filename, "its anaconda-project.yml is too large")
                with zf.open(found[0]) as fh:
                    data = fh.read(MAX_PROJECT_FILE + 1)
    else:
        try:
            with tarfile.open(path, mode="r:*") as tar:
                for n, member in enumerate(tar):
                    if n >= MAX_MEMBERS:
                        break
                    if member.isfile() and _is_project_member(member.name):
                        if member.size > MAX_PROJECT_FILE:
                            raise _bad_archive(filename, "its anaconda-project.yml is too large")
                        fh = tar.extractfile(member)
                        data = fh.read(MAX_PROJECT_FILE + 1) if fh else None
                        break
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise _bad_archive(filename, "it is neither a zip nor a tar archive") from exc
    if data is None:
        raise _bad_archive(filename, "it holds no anaconda-project.yml at its top or in its top directory")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _bad_archive(filename, "its anaconda-project.yml is not UTF-8") from exc


def parse_project(text: str, filename: str) -> dict[str, Any]:
    doc = load_yaml(text, filename, WHAT)
    name = check_name(doc.get("name"), filename, "Add `name: NAME` to anaconda-project.yml (letters, digits, ._+-)")
    packages = doc.get("packages") or doc.get("dependencies") or []
    if not isinstance(packages, list):
        raise InvalidInput(f"{filename}: `packages` is not a list", "List the project's packages under `packages:`",
                           code="invalid_project")
    platforms = doc.get("platforms") or []
    if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
        raise InvalidInput(f"{filename}: `platforms` is not a list of platform names",
                           "For example `platforms: [linux-64, osx-arm64, win-64]`", code="invalid_project")
    commands = doc.get("commands") or {}
    return {"name": name, "version": version_of(doc.get("version")), "packages": packages,
            "channels": [c for c in doc.get("channels") or [] if isinstance(c, str)], "platforms": platforms,
            "commands": sorted(commands) if isinstance(commands, dict) else [],
            "description": str(doc.get("description") or "")[:2000]}


class ProjectFamily(DocumentFamily):
    name = "anaconda_project"
    title = "anaconda-project"
    kind = "project"
    upload_types = frozenset({"anaconda_project", "project"})
    roots = frozenset({ROOT})
    type_name = "anaconda_project"

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        if filename in PROJECT_FILES:
            text = read_text(path, filename, WHAT)
        elif filename.endswith(ARCHIVE_EXTS):
            text = _read_member(path, filename)
        else:
            raise InvalidInput(f"{filename} is not an anaconda-project archive by its name",
                               "Upload a .zip, .tar.gz or .tar.bz2 (`anaconda-project archive`) or "
                               "anaconda-project.yml", code="filename_mismatch")
        project = parse_project(text, filename)
        name, version = project["name"], project["version"]
        deps = [p for p in project["packages"] if isinstance(p, str)]
        pip = [q for p in project["packages"] if isinstance(p, dict) for q in (p.get("pip") or [])
               if isinstance(q, str)]
        record = {"name": name, "version": version, "subdir": ROOT, "sha256": sha256, "md5": md5, "size": size,
                  "platforms": project["platforms"], "channels": project["channels"], "dependencies": deps,
                  "pip": pip}
        meta = {"summary": project["description"].splitlines()[0][:200] if project["description"] else "",
                "description": project["description"], "platforms": project["platforms"],
                "project": {"commands": project["commands"], "packages": deps, "channels": project["channels"]}}
        return Artifact(family=self.name, name=name, version=version, subdir=ROOT, filename=filename,
                        ckey=f"{ROOT}/{name}/{filename}", record=record, meta=meta)

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        return environment_sbom(self.name, record, meta, channel_url)


PROJECT = ProjectFamily()
