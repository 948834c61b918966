"""The repodata record schema: what rattler (and so conda, mamba and pixi) can parse.

One malformed record makes a whole ``repodata.json`` unreadable for rattler (an integer ``version``,
a float ``timestamp``, a string ``build_number``...), so every record is checked before it is stored:
an upload with a bad ``index.json`` is refused, a bad upstream record is skipped by the mirror run.
The rules follow rattler's record types: required ``name``/``version``/``build``/``build_number``,
the types of the optional fields, and name and version syntax as rattler parses them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from taipan.errors import InvalidInput

_HEX = {"md5": re.compile(r"^[0-9a-fA-F]{32}$"), "sha256": re.compile(r"^[0-9a-fA-F]{64}$"),
        "legacy_bz2_md5": re.compile(r"^[0-9a-fA-F]{32}$")}
_BUILD = re.compile(r"^[^\s/\\=<>!,|*\-\[\]()]+$")
_OPTIONAL_TEXT = ("license", "license_family", "arch", "platform", "python_site_packages_path", "features",
                  "subdir")
_UNSIGNED = ("size", "legacy_bz2_size")
_STRING_LISTS = ("depends", "constrains", "purls")
_NOARCH = (True, False, "python", "generic", "")


@lru_cache(maxsize=65536)
def _name_ok(name: str) -> bool:
    from rattler import PackageName

    if not name or len(name) > 200:
        return False
    try:
        PackageName(name)
    except Exception:
        return False
    return True


@lru_cache(maxsize=65536)
def _version_ok(version: str) -> bool:
    from rattler import Version

    if not version or len(version) > 200:
        return False
    try:
        Version(version)
    except Exception:
        return False
    return True


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def record_problem(record: Any) -> str | None:
    """Why rattler could not read this repodata record, or None when it can."""
    if not isinstance(record, Mapping):
        return f"the record is a {_kind(record)}, not an object"
    for key in ("name", "version", "build"):
        if not isinstance(record.get(key), str):
            return f"{key} must be a string (got {_kind(record.get(key))})"
    if not _name_ok(record["name"]):
        return f"name {record['name']!r} is not a valid package name"
    if not _version_ok(record["version"]):
        return f"version {record['version']!r} is not a valid version"
    if not record["build"] or not _BUILD.match(record["build"]):
        return f"build {record['build']!r} is not a valid build string"
    if not _is_int(record.get("build_number")) or record["build_number"] < 0:
        return f"build_number must be a non-negative integer (got {record.get('build_number')!r})"
    for key in _STRING_LISTS:
        if key in record and not (isinstance(record[key], list) and all(isinstance(d, str) for d in record[key])):
            return f"{key} must be a list of strings (got {_kind(record[key])})"
    for key in _OPTIONAL_TEXT:
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"{key} must be a string (got {_kind(record[key])})"
    for key in _UNSIGNED:
        if key in record and record[key] is not None and (not _is_int(record[key]) or record[key] < 0):
            return f"{key} must be a non-negative integer (got {record[key]!r})"
    if "timestamp" in record and record["timestamp"] is not None and not _is_int(record["timestamp"]):
        return f"timestamp must be an integer (got {record['timestamp']!r})"
    for key, pattern in _HEX.items():
        if record.get(key) is not None and not (isinstance(record[key], str) and pattern.match(record[key])):
            return f"{key} must be a hex digest (got {str(record[key])[:80]!r})"
    noarch = record.get("noarch")
    if noarch is not None and noarch not in _NOARCH:
        return f"noarch must be python or generic (got {noarch!r})"
    features = record.get("track_features")
    if features is not None and not (isinstance(features, str) or (
            isinstance(features, list) and all(isinstance(f, str) for f in features))):
        return f"track_features must be a string (got {_kind(features)})"
    if record.get("run_exports") is not None and not isinstance(record["run_exports"], dict | list):
        return f"run_exports must be an object (got {_kind(record['run_exports'])})"
    return None


def check_record(record: Mapping[str, Any], what: str = "The package's index.json") -> None:
    """Raise a 400 with the reason when ``record`` is not a valid repodata record."""
    problem = record_problem(record)
    if problem is not None:
        raise InvalidInput(f"{what} is invalid: {problem}",
                           "Rebuild the package with a conda build tool (rattler-build, conda-build); "
                           "its index.json must follow the repodata record schema",
                           code="invalid_package")
