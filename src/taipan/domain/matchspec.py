"""MatchSpecs with conda's semantics (a thin layer over py-rattler) and license families.

Records are plain repodata dicts. Building a rattler ``PackageRecord`` costs a few microseconds, so
specs first test the package *name* (a dict lookup or a glob) and only build a record for the
candidates; over a 100,000-record subdir that is the difference between ~0.4 s and a few ms.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rattler import BuildString, MatchSpec, PackageRecord

from taipan.errors import InvalidInput

LICENSE_FAMILIES: tuple[str, ...] = (
    "agpl", "gpl2", "gpl3", "lgpl", "bsd", "mit", "apache", "psf", "public_domain", "proprietary",
    "other", "none",
)
LICENSE_FAMILY_SET = frozenset(LICENSE_FAMILIES)


@dataclass(frozen=True)
class Spec:
    """A parsed MatchSpec. ``name`` is the exact normalized name, or None for a glob name."""

    text: str
    match_spec: MatchSpec = field(compare=False, repr=False)
    name: str | None
    name_glob: str | None

    def name_matches(self, name: str) -> bool:
        if self.name is not None:
            return name.lower() == self.name
        return self.name_glob is None or fnmatch.fnmatchcase(name.lower(), self.name_glob)

    def matches(self, record: Mapping[str, Any]) -> bool:
        if not self.name_matches(str(record.get("name", ""))):
            return False
        # rattler's matches() ignores the subdir ("[subdir=osx-64]", "channel/osx-64::name") and the
        # file name ("[fn=...]"); conda tests both against the record, so do we.
        if not _field_ok(self.match_spec.subdir, record.get("subdir")):
            return False
        if not _field_ok(self.match_spec.file_name, record.get("fn")):
            return False
        return self.match_spec.matches(package_record(record))


def _field_ok(wanted: Any, actual: Any) -> bool:
    if wanted is None or not isinstance(actual, str) or not actual:
        return True  # no constraint, or nothing on the record to test it against
    return fnmatch.fnmatchcase(actual, str(wanted))


def parse_spec(text: str) -> Spec:
    """Parse a MatchSpec as conda does; raise InvalidInput with a hint when it is not one."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("An empty MatchSpec was given", "Give a spec such as 'numpy >=1.26'",
                           code="invalid_matchspec")
    text = text.strip()
    try:
        ms = MatchSpec(text, exact_names_only=False)
    except Exception as exc:  # rattler raises its own exception classes
        raise InvalidInput(
            f"Invalid MatchSpec {text!r}: {exc}",
            "Use conda's syntax, e.g. 'numpy', 'numpy >=1.26,<2', 'python 3.11.*', 'pkg[build=py*]'",
            code="invalid_matchspec",
        ) from exc
    exact = ms.name.as_package_name() if ms.name is not None else None
    if exact is not None:
        return Spec(text, ms, exact.normalized, None)
    glob = ms.name.normalized if ms.name is not None else None
    return Spec(text, ms, None, None if glob in (None, "*") else str(glob).lower())


def parse_specs(texts: Iterable[str]) -> list[Spec]:
    return [parse_spec(t) for t in texts]


_HEX = re.compile(r"^[0-9a-fA-F]+$")


def _digest(value: Any) -> bytes | None:
    if isinstance(value, str) and _HEX.match(value) and len(value) % 2 == 0:
        return bytes.fromhex(value)
    return None


def package_record(record: Mapping[str, Any]) -> PackageRecord:
    """A rattler PackageRecord from a repodata record dict (the fields a MatchSpec can test)."""
    noarch = record.get("noarch")
    if noarch not in ("python", "generic"):
        noarch = "generic" if noarch is True else None
    return PackageRecord(
        name=str(record["name"]),
        version=str(record["version"]),
        build=BuildString(str(record.get("build", ""))),
        build_number=int(record.get("build_number") or 0),
        subdir=str(record.get("subdir") or "noarch"),
        noarch=noarch,
        depends=[str(d) for d in record.get("depends") or []],
        constrains=[str(d) for d in record.get("constrains") or []],
        sha256=_digest(record.get("sha256")),
        md5=_digest(record.get("md5")),
        size=record.get("size") if isinstance(record.get("size"), int) else None,
        features=_features(record.get("features")),
        license=record.get("license") if isinstance(record.get("license"), str) else None,
        license_family=(record.get("license_family")
                        if isinstance(record.get("license_family"), str) else None),
    )


def _features(value: Any) -> list[str] | None:
    if isinstance(value, str):
        return [f for f in value.replace(",", " ").split() if f] or None
    if isinstance(value, list):
        return [str(f) for f in value] or None
    return None


# --- license families -------------------------------------------------------------------------

# Checked in order: the first pattern found in the normalized license string wins. AGPL and LGPL
# come before GPL because their names contain "GPL".
_LICENSE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern)) for family, pattern in (
        ("agpl", r"\bagpl|affero"),
        ("lgpl", r"\blgpl|lesser general public|library general public"),
        ("gpl3", r"\bgpl[-_ v]*3|general public license[^,;]*\bv?(?:ersion )?3"),
        ("gpl2", r"\bgpl[-_ v]*2|general public license[^,;]*\bv?(?:ersion )?2"),
        ("gpl3", r"\bgpl\b(?![-_ v]*[12])"),  # a bare "GPL" means the current version
        ("bsd", r"\bbsd"),
        ("mit", r"\bmit\b|\bexpat\b"),
        ("apache", r"\bapache"),
        ("psf", r"\bpsf\b|python software foundation|\bpython[-_ ]2\.0"),
        ("public_domain", r"public[-_ ]?domain|\bunlicense\b|\bcc0\b"),
        ("proprietary", r"proprietary|commercial|licenseref-proprietary"),
    )
)

# Values seen in the `license_family` field of real repodata, mapped to our families.
_FAMILY_FIELD = {
    "agpl": "agpl", "gpl2": "gpl2", "gpl3": "gpl3", "gpl": "gpl3", "lgpl": "lgpl", "bsd": "bsd",
    "mit": "mit", "apache": "apache", "psf": "psf", "public-domain": "public_domain",
    "public_domain": "public_domain", "publicdomain": "public_domain",
    "proprietary": "proprietary", "other": "other", "none": "none", "cc": "other", "mozilla": "other",
}


_GPL_FAMILIES = frozenset({"agpl", "lgpl", "gpl2", "gpl3"})


def license_family(record: Mapping[str, Any]) -> str:
    """The license family of a record: its ``license_family`` field first, else its ``license``."""
    lic = record.get("license")
    lic = lic if isinstance(lic, str) else ""
    fam = record.get("license_family")
    if isinstance(fam, str) and fam.strip():
        key = fam.strip().lower()
        mapped = _FAMILY_FIELD.get(key)
        if key == "gpl":
            # conda-build writes a bare "GPL" family for GPL-2.0, LGPL and AGPL packages too: the
            # license string says which one (readline: GPL-3.0-only; gmp: GPL-2.0-or-later OR ...).
            from_text = family_of_license(lic)
            if from_text in _GPL_FAMILIES:
                return from_text
        if mapped is not None:
            return mapped
    return family_of_license(lic)


@lru_cache(maxsize=4096)
def family_of_license(text: str) -> str:
    """Map a license string (SPDX-ish or free text) to a family; '' -> 'none', unknown -> 'other'."""
    norm = text.strip().lower()
    if not norm or norm in ("none", "null", "unknown", "n/a"):
        return "none"
    for family, pattern in _LICENSE_PATTERNS:
        if pattern.search(norm):
            return family
    return "other"


# Quotes that survive copying a command from a web page or a word processor.
QUOTES = "\"'\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b\u00ab\u00bb\u2033\u2032"


def parse_license_list(value: str | Iterable[str]) -> tuple[list[str], list[str]]:
    """'-gpl3,mit,+bsd' -> (include, exclude). Raise InvalidInput for an unknown family."""
    items = value.split(",") if isinstance(value, str) else list(value)
    include: list[str] = []
    exclude: list[str] = []
    for raw in items:
        item = str(raw).strip().strip(QUOTES).strip()  # “-public_domain” pasted from a web page
        if not item:
            continue
        target = exclude if item.startswith("-") else include
        typed = item.lstrip("+-").strip().strip(QUOTES).strip()
        name = typed.lower().replace("-", "_")
        if name not in LICENSE_FAMILY_SET:  # named as typed, not as normalised
            check_license_family(typed)
        if name not in target:
            target.append(name)
    return include, exclude


def check_license_family(name: str) -> str:
    if name not in LICENSE_FAMILY_SET:
        raise InvalidInput(f"Unknown license family {name!r}",
                           "Use one of: " + ", ".join(LICENSE_FAMILIES) + " (prefix '-' to exclude)",
                           code="invalid_license")
    return name
