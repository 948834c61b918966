"""Conda artifacts: file names, archive formats, info/index.json and about.json, repodata records."""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from taipan.domain.names import SUBDIR_SET, validate_filename
from taipan.errors import InvalidInput

CONDA_EXTS = (".conda", ".tar.bz2")
# Keys of index.json that belong in a repodata record (everything else is dropped).
_RECORD_KEYS = (
    "arch", "build", "build_number", "constrains", "depends", "features", "license",
    "license_family", "md5", "name", "noarch", "platform", "python_site_packages_path", "sha256",
    "size", "subdir", "timestamp", "track_features", "version", "purls", "run_exports",
)
MAX_INFO_MEMBER = 16 * 1024 * 1024


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


def read_package_info(fileobj: BinaryIO, filename: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``info/index.json`` and ``info/about.json`` from a package; raise InvalidInput if corrupt."""
    from conda_package_streaming.package_streaming import stream_conda_info

    wanted = {"info/index.json": None, "info/about.json": None}
    try:
        for tar, member in stream_conda_info(_inner_name(fileobj, filename), fileobj):
            if member.name in wanted and member.isfile():
                if member.size > MAX_INFO_MEMBER:
                    raise InvalidInput(f"{member.name} is too large", "The package is malformed",
                                       code="invalid_package")
                extracted = tar.extractfile(member)
                wanted[member.name] = json.loads(extracted.read()) if extracted else None
                if all(v is not None for v in wanted.values()):
                    break
    except InvalidInput:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, LookupError, KeyError,
            json.JSONDecodeError, Exception) as exc:  # any decoding failure means a bad archive
        raise InvalidInput(
            f"{filename} is not a readable conda package ({type(exc).__name__}: {str(exc)[:200]})",
            "The archive is corrupt or truncated; rebuild it or upload it again",
            code="invalid_package",
        ) from exc
    index = wanted["info/index.json"]
    if not isinstance(index, dict):
        raise InvalidInput(f"{filename} has no info/index.json",
                           "Conda packages carry their metadata in info/index.json; rebuild the package",
                           code="invalid_package")
    about = wanted["info/about.json"]
    return index, about if isinstance(about, dict) else {}


def _inner_name(fileobj: BinaryIO, filename: str) -> str:
    """The name a .conda archive calls itself inside (its info-<stem>.tar.zst member), so that a
    renamed file is read and then reported as a name mismatch rather than as a corrupt archive."""
    if not filename.endswith(".conda"):
        return filename
    import zipfile

    with zipfile.ZipFile(fileobj) as zf:
        members = [n for n in zf.namelist() if n.startswith("info-") and n.endswith(".tar.zst")]
    fileobj.seek(0)
    if len(members) != 1:
        raise InvalidInput(f"{filename} has no info component", "The .conda archive is malformed",
                           code="invalid_package")
    return members[0][len("info-"):-len(".tar.zst")] + ".conda"


def check_index_matches(index: Mapping[str, Any], fn: CondaFilename) -> str:
    """Check index.json against the file name; return the subdir the package belongs to."""
    got = (str(index.get("name", "")), str(index.get("version", "")), str(index.get("build", "")))
    if got != (fn.name, fn.version, fn.build):
        raise InvalidInput(
            f"The file name {fn.filename!r} does not match the package's index.json "
            f"(name={got[0]!r}, version={got[1]!r}, build={got[2]!r})",
            f"Rename the file to {got[0]}-{got[1]}-{got[2]}{fn.ext}",
            code="filename_mismatch",
        )
    subdir = index.get("subdir") or ("noarch" if index.get("noarch") else None)
    if subdir not in SUBDIR_SET:
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
