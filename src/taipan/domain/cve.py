"""CVE rules, pure: reading NVD CVE API 2.0 and OSV records, choosing a score, and deciding whether
a version of a package is affected.

A record becomes a ``CveRecord`` (one source: NVD, or one OSV advisory) with ``Affect`` entries. An
affect says which package key it concerns: ``(ecosystem, key)`` where ecosystem is ``cpe`` (an NVD
application CPE, keyed by ``vendor:product``), or an OSV ecosystem (``PyPI``, ``CRAN``...) keyed by
the ecosystem's normalised package name. Which file families look at which ecosystems is the table
``FAMILY_SOURCES``; versions are always compared with the file's own family's ``version_key``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taipan.errors import InvalidInput

STATUSES = ("reported", "active", "cleared", "mitigated", "disputed")
# Statuses whose CVEs no longer count towards a file's score.
NON_IMPACTFUL = frozenset({"cleared", "disputed"})
# A file's cve_status is the most pressing status among its CVEs.
_STATUS_RANK = {"reported": 0, "active": 1, "mitigated": 2, "disputed": 3, "cleared": 4}

# Which advisory sources apply to the files of a family: NVD CPEs to conda packages; OSV PyPI
# advisories to Python files and to conda packages of the same normalised name; OSV CRAN to R files.
FAMILY_SOURCES: dict[str, tuple[str, ...]] = {
    "conda": ("cpe", "PyPI"),
    "python": ("PyPI",),
    "cran": ("CRAN",),
}
OSV_ECOSYSTEMS = frozenset({"PyPI", "CRAN"})

MAX_ID = 64
MAX_DESCRIPTION = 20_000
MAX_VERSION = 255


def pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ecosystem_key(ecosystem: str, name: str) -> str:
    """A package name as an ecosystem compares names."""
    if ecosystem == "PyPI":
        return pep503(name)
    if ecosystem == "cpe":
        return name.lower()
    return name


def product_fallback(product: str) -> str:
    """The package name a CPE product means when the mapping table does not name it."""
    return re.sub(r"[^a-z0-9._+-]+", "-", product.lower().replace("\\", "")).strip("-")


@dataclass(frozen=True)
class Affect:
    """One affected package and which of its versions: ``spec`` is JSON-able.

    cpe spec: ``{"exact": v}`` or any of ``start_incl/start_excl/end_incl/end_excl``, plus
    ``platforms`` (OS names an AND configuration requires; empty = any).
    OSV spec: ``{"ranges": [[{"introduced": ...}, {"fixed": ...}], ...], "versions": [...]}``.
    """

    ecosystem: str
    key: str          # cpe: "vendor:product"; OSV: the normalised package name
    spec: dict[str, Any]


@dataclass
class CveRecord:
    id: str                      # the CVE id (an OSV advisory with a CVE alias is filed under it)
    source: str                  # "nvd" or the OSV advisory id
    modified: datetime
    published: datetime | None
    description: str
    aliases: list[str] = field(default_factory=list)
    cvss2: dict[str, Any] | None = None
    cvss3: dict[str, Any] | None = None
    cvss4: dict[str, Any] | None = None
    score: float | None = None
    score_type: str | None = None   # CVSS3 | CVSS2
    affects: list[Affect] = field(default_factory=list)


def parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} is missing or not a date", "Each record needs an ISO 8601 date",
                           code="invalid_cve_record")
    try:
        # NVD omits the zone (UTC); OSV writes "Z", "+00:00" or a space before the time.
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise InvalidInput(f"{what} {value[:40]!r} is not a date", "Use ISO 8601", code="invalid_cve_record") \
            from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _bad(msg: str) -> InvalidInput:
    return InvalidInput(msg, "Import NVD CVE API 2.0 feeds or OSV advisories (JSON)", code="invalid_cve_record")


def _str(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


# --- scores -------------------------------------------------------------------------------------------

def _pick(metrics: list[Any]) -> dict[str, Any] | None:
    items = [m for m in metrics if isinstance(m, dict) and isinstance(m.get("cvssData"), dict)]
    for wanted in ("Primary", "Secondary"):
        for m in items:
            if m.get("type") == wanted:
                return m
    return items[0] if items else None


def _score(metric: dict[str, Any] | None) -> float | None:
    if metric is None:
        return None
    value = metric["cvssData"].get("baseScore")
    return round(float(value), 1) if isinstance(value, int | float) and 0 <= value <= 10 else None


def nvd_scores(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The NVD rule: the Primary v3.x metric (v3.1 before v3.0), else a Secondary v3.x, else v2;
    v4.0 kept when present."""
    v31 = metrics.get("cvssMetricV31") or []
    v30 = metrics.get("cvssMetricV30") or []
    v3 = None
    for wanted in ("Primary", "Secondary"):
        for m in [*v31, *v30]:
            if isinstance(m, dict) and m.get("type") == wanted and isinstance(m.get("cvssData"), dict):
                v3 = m
                break
        if v3:
            break
    if v3 is None:
        v3 = _pick([*v31, *v30])
    v2 = _pick(metrics.get("cvssMetricV2") or [])
    v4 = _pick(metrics.get("cvssMetricV40") or [])
    out: dict[str, Any] = {"cvss3": None, "cvss2": None, "cvss4": None, "score": None, "score_type": None}
    if v3 is not None:
        data = dict(v3["cvssData"])
        out["cvss3"] = {"source": v3.get("source"), "type": v3.get("type"), "cvssV3": data,
                        "exploitabilityScore": v3.get("exploitabilityScore"),
                        "impactScore": v3.get("impactScore")}
    if v2 is not None:
        out["cvss2"] = {"source": v2.get("source"), "type": v2.get("type"), "severity": v2.get("baseSeverity"),
                        "cvssV2": dict(v2["cvssData"]), "exploitabilityScore": v2.get("exploitabilityScore"),
                        "impactScore": v2.get("impactScore")}
    if v4 is not None:
        out["cvss4"] = {"source": v4.get("source"), "type": v4.get("type"), "cvssV4": dict(v4["cvssData"])}
    if _score(v3) is not None:
        out["score"], out["score_type"] = _score(v3), "CVSS3"
    elif _score(v2) is not None:
        out["score"], out["score_type"] = _score(v2), "CVSS2"
    return out


def severity(score: float | None) -> str | None:
    if score is None:
        return None
    if score == 0:
        return "none"
    return "low" if score < 4 else "medium" if score < 7 else "high" if score < 9 else "critical"


# --- NVD ----------------------------------------------------------------------------------------------

_OS_NAMES = (("windows", "win"), ("macos", "osx"), ("mac_os", "osx"), ("linux", "linux"))


def parse_cpe(criteria: str) -> tuple[str, str, str, str] | None:
    """(part, vendor, product, version) of a CPE 2.3 name, or None if it is not one."""
    parts = re.split(r"(?<!\\):", criteria)
    if len(parts) < 6 or parts[0] != "cpe" or parts[1] != "2.3":
        return None
    return parts[2], parts[3], parts[4], parts[5]


def _platform_os(criteria: str) -> str | None:
    cpe = parse_cpe(criteria)
    if cpe is None or cpe[0] != "o":
        return None
    name = f"{cpe[1]}:{cpe[2]}"
    for needle, os_name in _OS_NAMES:
        if needle in name:
            return os_name
    return None


def _cpe_affect(match: Mapping[str, Any], platforms: list[str]) -> Affect | None:
    if match.get("vulnerable") is not True or not isinstance(match.get("criteria"), str):
        return None
    cpe = parse_cpe(match["criteria"])
    if cpe is None or cpe[0] != "a":  # operating systems (o) and hardware (h) are not packages
        return None
    _, vendor, product, version = cpe
    spec: dict[str, Any] = {}
    for src, dst in (("versionStartIncluding", "start_incl"), ("versionStartExcluding", "start_excl"),
                     ("versionEndIncluding", "end_incl"), ("versionEndExcluding", "end_excl")):
        if isinstance(match.get(src), str) and match[src]:
            spec[dst] = match[src][:MAX_VERSION]
    if version == "-":  # "not applicable": no version can be compared
        return None
    if version != "*":
        spec["exact"] = version.replace("\\", "")[:MAX_VERSION]
    if platforms:
        spec["platforms"] = platforms
    return Affect("cpe", f"{vendor.lower()}:{product.lower()}"[:255], spec)


def nvd_affects(configurations: Iterable[Any]) -> list[Affect]:
    out: list[Affect] = []
    for config in configurations or []:
        if not isinstance(config, dict):
            continue
        nodes = [n for n in config.get("nodes") or [] if isinstance(n, dict)]
        platforms: list[str] = []
        if config.get("operator") == "AND":
            # The non-vulnerable CPEs of an AND configuration are the platform the product must run on.
            for node in nodes:
                for m in node.get("cpeMatch") or []:
                    if isinstance(m, dict) and m.get("vulnerable") is False:
                        os_name = _platform_os(str(m.get("criteria", "")))
                        if os_name and os_name not in platforms:
                            platforms.append(os_name)
        for node in nodes:
            if node.get("negate"):
                continue
            for m in node.get("cpeMatch") or []:
                if isinstance(m, dict) and (a := _cpe_affect(m, platforms)) is not None and a not in out:
                    out.append(a)
    return out


def parse_nvd(item: Any) -> CveRecord:
    """One element of an NVD API 2.0 ``vulnerabilities`` list (``{"cve": {...}}``)."""
    cve = item.get("cve") if isinstance(item, dict) else None
    if not isinstance(cve, dict) or not isinstance(cve.get("id"), str) or not cve["id"].startswith("CVE-"):
        raise _bad("An NVD record without a CVE id (expected {\"cve\": {\"id\": \"CVE-...\"}})")
    cve_id = cve["id"][:MAX_ID]
    descriptions = [d for d in cve.get("descriptions") or [] if isinstance(d, dict)]
    text = next((d.get("value") for d in descriptions if d.get("lang") == "en"),
                descriptions[0].get("value") if descriptions else "")
    metrics = cve.get("metrics") if isinstance(cve.get("metrics"), dict) else {}
    scores = nvd_scores(metrics)
    return CveRecord(
        id=cve_id, source="nvd", modified=parse_time(cve.get("lastModified"), f"{cve_id} lastModified"),
        published=parse_time(cve["published"], f"{cve_id} published") if cve.get("published") else None,
        description=_str(text, MAX_DESCRIPTION), affects=nvd_affects(cve.get("configurations") or []),
        **scores)


# --- OSV ----------------------------------------------------------------------------------------------

def parse_osv(adv: Any) -> CveRecord:
    """One OSV advisory; filed under its first CVE alias when it has one."""
    if not isinstance(adv, dict) or not isinstance(adv.get("id"), str) or not adv["id"]:
        raise _bad("An OSV advisory without an id")
    osv_id = adv["id"][:MAX_ID]
    aliases = [a[:MAX_ID] for a in adv.get("aliases") or [] if isinstance(a, str)]
    cve_id = next((a for a in aliases if a.startswith("CVE-")), osv_id)
    affects: list[Affect] = []
    for aff in adv.get("affected") or []:
        if not isinstance(aff, dict) or not isinstance(aff.get("package"), dict):
            continue
        eco = str(aff["package"].get("ecosystem", "")).split(":")[0]
        name = aff["package"].get("name")
        if eco not in OSV_ECOSYSTEMS or not isinstance(name, str) or not name:
            continue
        ranges = []
        for r in aff.get("ranges") or []:
            if isinstance(r, dict) and r.get("type") in ("ECOSYSTEM", "SEMVER"):
                events = [{k: str(v)[:MAX_VERSION]} for e in r.get("events") or [] if isinstance(e, dict)
                          for k, v in e.items() if k in ("introduced", "fixed", "last_affected")]
                if events:
                    ranges.append(events)
        versions = [str(v)[:MAX_VERSION] for v in aff.get("versions") or [] if isinstance(v, str | int | float)]
        if ranges or versions:
            affects.append(Affect(eco, ecosystem_key(eco, name)[:255], {"ranges": ranges, "versions": versions}))
    published = adv.get("published")
    return CveRecord(
        id=cve_id, source=osv_id, modified=parse_time(adv.get("modified"), f"{osv_id} modified"),
        published=parse_time(published, f"{osv_id} published") if published else None,
        description=_str(adv.get("details") or adv.get("summary"), MAX_DESCRIPTION),
        aliases=[a for a in [osv_id, *aliases] if a != cve_id], affects=affects)


# --- matching -----------------------------------------------------------------------------------------

def subdir_os(subdir: str) -> str | None:
    """The operating system a partition's files run on (win-64 -> win), None when any or unknown."""
    head = subdir.split("-", 1)[0]
    return head if head in ("win", "osx", "linux") else None


Key = Callable[[str], Any]


def _compare(version: str, vk: Any, bound: str, key: Key) -> int | None:
    """-1, 0 or 1 as ``version`` is before, equal to or after ``bound``; None when incomparable.

    A purely alphabetic suffix after a number (OpenSSL's 1.1.1t) is a later patch in NVD's ranges, but
    conda orders it before the bare number: so ``1.1.1t`` against the bound ``1.1.1`` is decided here
    (after it); everything else is the family's own order."""
    if version == bound:
        return 0
    for longer, shorter, sign in ((version, bound, 1), (bound, version, -1)):
        rest = longer[len(shorter):]
        if longer.startswith(shorter) and rest.isalpha() and shorter[-1:].isdigit():
            return sign
    try:
        b = key(bound)
        return 0 if vk == b else (1 if vk > b else -1)
    except TypeError:
        return None


def cpe_affected(spec: Mapping[str, Any], version: str, key: Key, os_name: str | None) -> bool:
    platforms = spec.get("platforms")
    if platforms and os_name is not None and os_name not in platforms:
        return False  # the AND configuration names a platform this file does not run on
    vk = key(version)
    if "exact" in spec:
        return _compare(version, vk, spec["exact"], key) == 0
    checks = (("start_incl", (0, 1)), ("start_excl", (1,)), ("end_incl", (-1, 0)), ("end_excl", (-1,)))
    return all(_compare(version, vk, spec[name], key) in ok for name, ok in checks if name in spec)


def osv_affected(spec: Mapping[str, Any], version: str, key: Key) -> bool:
    if version in (spec.get("versions") or ()):
        return True
    vk = key(version)
    for events in spec.get("ranges") or ():
        points = []
        for ev in events:
            (kind, value), = ev.items()
            if kind == "introduced" and value == "0":
                points.append((0, None, kind))
            else:
                try:
                    points.append((1, key(value), kind))
                except Exception:  # noqa: BLE001 - an unparsable bound never matches
                    continue
        try:
            points.sort(key=lambda p: (p[0], p[1]) if p[1] is not None else (0, 0))
        except TypeError:
            continue
        affected = False
        for _, bound, kind in points:
            try:
                if kind == "introduced" and (bound is None or vk >= bound):
                    affected = True
                elif kind == "fixed" and vk >= bound:
                    affected = False
                elif kind == "last_affected" and vk > bound:
                    affected = False
            except TypeError:
                continue
        if affected:
            return True
    return False


def affected(ecosystem: str, spec: Mapping[str, Any], version: str, key: Key, subdir: str) -> bool:
    if ecosystem == "cpe":
        return cpe_affected(spec, version, key, subdir_os(subdir))
    return osv_affected(spec, version, key)


def file_summary(cves: Iterable[tuple[float | None, str]]) -> tuple[float | None, str | None]:
    """(cve_score, cve_status) of a file from its CVEs' (score, status)."""
    score: float | None = None
    status: str | None = None
    for s, st in cves:
        if status is None or _STATUS_RANK.get(st, 0) < _STATUS_RANK.get(status, 0):
            status = st
        if st not in NON_IMPACTFUL and s is not None and (score is None or s > score):
            score = s
    return score, status


def check_status(status: Any) -> str:
    if status not in STATUSES:
        raise InvalidInput(f"Unknown CVE status {status!r}", f"Use one of: {', '.join(STATUSES)}",
                           code="invalid_cve_status")
    return str(status)


CVE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{2,63}$")


def check_cve_id(cve_id: str) -> str:
    if not CVE_ID.match(cve_id):
        raise InvalidInput(f"{cve_id[:70]!r} is not a CVE or advisory id", "For example CVE-2023-0286",
                           code="invalid_cve_id")
    return cve_id
