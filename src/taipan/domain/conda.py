"""Conda artifacts: file names, archive formats, info/index.json and about.json, repodata records."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taipan.domain.names import SUBDIR_SET, validate_filename
from taipan.errors import InvalidInput

CONDA_EXTS = (".conda", ".tar.bz2")
# Keys of index.json that belong in a repodata record (everything else is dropped).
_RECORD_KEYS = (
    "arch", "build", "build_number", "constrains", "depends", "features", "license",
    "license_family", "md5", "name", "noarch", "platform", "python_site_packages_path", "sha256",
    "size", "subdir", "timestamp", "track_features", "version", "purls", "run_exports",
)


@dataclass(frozen=True)
class CondaFilename:
    name: str
    version: str
    build: str
    ext: str

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}{self.ext}"


def parse_conda_filename(filename: str) -> CondaFilename:
    validate_filename(filename)
    ext = next((e for e in CONDA_EXTS if filename.endswith(e)), None)
    if ext is None:
        raise InvalidInput(f"{filename!r} is not a conda package file name",
                           "Conda packages end in .conda or .tar.bz2", code="invalid_filename")
    stem = filename[: -len(ext)]
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise InvalidInput(f"{filename!r} is not a conda package file name",
                           "Expected NAME-VERSION-BUILD.conda or NAME-VERSION-BUILD.tar.bz2",
                           code="invalid_filename")
    return CondaFilename(parts[0], parts[1], parts[2], ext)


def sniff_conda_format(head: bytes) -> str | None:
    """The archive format from the first bytes: '.conda' (zip) or '.tar.bz2', else None."""
    if head.startswith(b"PK\x03\x04"):
        return ".conda"
    if head.startswith(b"BZh"):
        return ".tar.bz2"
    return None


def check_index_matches(index: Mapping[str, Any], fn: CondaFilename) -> str:
    """Check index.json against the file name; return the subdir the package belongs to."""
    for key in ("name", "version", "build"):
        if not isinstance(index.get(key), str):
            raise InvalidInput(f"The package's index.json has no text {key!r} (got {type(index.get(key)).__name__})",
                               "Rebuild the package: name, version and build are strings", code="invalid_package")
    got = (index["name"], index["version"], index["build"])
    if got != (fn.name, fn.version, fn.build):
        raise InvalidInput(
            f"The file name {fn.filename!r} does not match the package's index.json "
            f"(name={got[0]!r}, version={got[1]!r}, build={got[2]!r})",
            f"Rename the file to {got[0]}-{got[1]}-{got[2]}{fn.ext}",
            code="filename_mismatch",
        )
    subdir = index.get("subdir") or ("noarch" if index.get("noarch") else None)
    if not isinstance(subdir, str) or subdir not in SUBDIR_SET:
        raise InvalidInput(f"The package's subdir {subdir!r} is unknown",
                           "Known subdirs include noarch, linux-64, osx-arm64, win-64",
                           code="unknown_subdir")
    return str(subdir)


def make_record(index: Mapping[str, Any], *, sha256: str, md5: str, size: int,
                subdir: str) -> dict[str, Any]:
    """The repodata record of a package: its index.json plus hashes and size."""
    record = {k: index[k] for k in _RECORD_KEYS if k in index}
    record.update(sha256=sha256, md5=md5, size=size, subdir=subdir)
    record.setdefault("depends", [])
    record.setdefault("build_number", 0)
    return dict(sorted(record.items()))


def safe_basename(path: str) -> str:
    return os.path.basename(path.replace("\\", "/"))
