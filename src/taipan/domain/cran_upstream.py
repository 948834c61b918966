"""Reading an upstream CRAN-like repository's ``src/contrib/PACKAGES`` (CRAN itself, Posit Package
Manager, another Taipan, a tree made by ``tools::write_PACKAGES``) and the filters of a CRAN mirror:
R requirements (``ggplot2 (>= 3.4)``), license families of R's License field, the date window on
Date/Publication, and the dependency closure over Depends, Imports and LinkingTo. Pure: the caller
fetches the bytes."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote, urljoin

from taipan.domain import cran, rds
from taipan.domain.matchspec import family_of_license
from taipan.errors import InvalidInput

# The stanza fields a mirrored record keeps (the PACKAGES fields, and the dates the filters and
# Meta/archive.rds read).
KEPT_FIELDS = (*cran.PACKAGES_FIELDS, "Packaged", "Date/Publication")


@dataclass(frozen=True)
class UpstreamPackage:
    name: str
    version: str
    filename: str
    url: str  # absolute
    record: dict[str, Any]  # the stanza's fields as stored (KEPT_FIELDS), values on one line
    archived: bool = False  # an older version, from src/contrib/Archive/<name>/
    partition: str = cran.SOURCE_PARTITION

    @property
    def md5(self) -> str:
        return str(self.record.get("MD5sum") or "")

    @property
    def sha256(self) -> str:
        return str(self.record.get("SHA256") or "")


def partition_ext(partition: str) -> str:
    """The package file type of a tree: .tar.gz (src/contrib), .zip (Windows), .tgz (macOS)."""
    if partition == cran.SOURCE_PARTITION:
        return cran.SOURCE_EXT
    return cran.WINDOWS_EXT if partition.startswith("bin/windows/") else cran.MAC_EXT


def validate_partition(value: str) -> str:
    if not cran.is_partition(value):
        raise InvalidInput(f"{value[:100]!r} is not a tree of a CRAN-like repository",
                           "Give src/contrib, bin/windows/contrib/<R x.y> or bin/macosx/[<build>/]contrib/<R x.y>, "
                           "e.g. --subdirs src/contrib,bin/windows/contrib/4.4", code="unknown_subdir")
    return value


def parse_packages(data: bytes, contrib_url: str, partition: str = cran.SOURCE_PARTITION) -> list[UpstreamPackage]:
    """The valid stanzas of a PACKAGES file (``Path:`` and ``File:`` honoured, as R does); stanzas
    without a valid name or version are skipped (R could not install them either)."""
    ext = partition_ext(partition)
    out = []
    for st in cran.parse_dcf(data):
        name, version = st.get("Package", ""), st.get("Version", "")
        if not cran.is_valid_name(name) or not cran.is_valid_version(version):
            continue
        filename = st.get("File") or f"{name}_{version}{ext}"
        if "/" in filename or filename != f"{name}_{version}{ext}":
            continue  # Taipan stores a source package under its canonical name only
        path = st.get("Path", "").strip("/")
        url = urljoin(contrib_url, (path + "/" if path else "") + filename)
        record = {k: cran.one_line(st[k]) for k in KEPT_FIELDS if st.get(k)}
        out.append(UpstreamPackage(name, version, filename, url, record, partition=partition))
    return out


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href") if tag == "a" else None
        if href:
            self.hrefs.append(href)


def parse_archive_listing(name: str, html: bytes, listing_url: str) -> list[UpstreamPackage]:
    """The older versions of ``name`` in an ``Archive/<name>/`` directory listing (CRAN's, or any
    web server's autoindex). Their records carry only what the file name says."""
    parser = _Links()
    parser.feed(html.decode("utf-8", "replace"))
    out = []
    for href in parser.hrefs:
        filename = unquote(href.split("?")[0].rstrip("/").rsplit("/", 1)[-1])
        try:
            fn = cran.parse_filename(filename)
        except InvalidInput:  # not a package file (sorting links, the parent directory, ...)
            continue
        if fn.name != name or fn.ext != cran.SOURCE_EXT:
            continue
        out.append(UpstreamPackage(name, fn.version, filename, urljoin(listing_url, href.split("?")[0]),
                                   {"Package": name, "Version": fn.version}, archived=True))
    return out


def parse_archive_rds(data: bytes, contrib_url: str) -> dict[str, list[UpstreamPackage]]:
    """The archived versions ``src/contrib/Meta/archive.rds`` lists (CRAN's and Taipan's: a list
    named by package of data frames whose row names are ``<pkg>/<pkg>_<version>.tar.gz``), by name.
    ValueError when it is not such a file."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"broken gzip: {exc}") from exc
    top = rds.unserialize(data)
    names = top.attributes.get("names") if isinstance(top, rds.RObject) else None
    if not isinstance(names, rds.RObject) or top.kind != "list":
        raise ValueError("not a named list")
    out: dict[str, list[UpstreamPackage]] = {}
    for name, frame in zip(names.items, top.items, strict=False):
        rows = frame.attributes.get("row.names") if isinstance(frame, rds.RObject) else None
        if not isinstance(name, str) or not isinstance(rows, rds.RObject) or rows.kind != "character":
            continue
        for row in rows.items:
            pkg, _, filename = str(row).partition("/")
            try:
                fn = cran.parse_filename(filename)
            except InvalidInput:
                continue
            if pkg == name == fn.name and fn.ext == cran.SOURCE_EXT:
                out.setdefault(name, []).append(UpstreamPackage(
                    name, fn.version, filename, urljoin(contrib_url, f"Archive/{name}/{filename}"),
                    {"Package": name, "Version": fn.version}, archived=True))
    return out


# -- licenses ----------------------------------------------------------------------------------------

_R_LICENSES = {"gpl-2": "gpl2", "gpl-3": "gpl3", "gpl": "gpl2", "agpl-3": "agpl", "agpl": "agpl",
               "lgpl": "lgpl", "lgpl-2": "lgpl", "lgpl-2.1": "lgpl", "lgpl-3": "lgpl", "mit": "mit",
               "bsd_2_clause": "bsd", "bsd_3_clause": "bsd", "apache": "apache", "cc0": "public_domain",
               "unlimited": "public_domain", "file license": "other"}
_CONSTRAINT = re.compile(r"\(\s*(?:>=|==|>)?\s*v?([0-9][0-9.]*)\s*\)")


def r_license_families(text: str | None) -> frozenset[str]:
    """The license families of R's License field: one per alternative (``GPL-2 | GPL-3``), each
    with ``+ file LICENSE`` dropped and ``GPL (>= 2)`` read as GPL-2 (its lowest version)."""
    out = set()
    for alt in str(text or "").split("|"):
        item = re.sub(r"\+\s*file\s+licen[cs]e", "", alt, flags=re.I).strip()
        if not item:
            continue
        m = _CONSTRAINT.search(item)
        base = item[:m.start()].strip() if m else item
        key = base.lower().replace(" license", "").strip()
        if m and key in ("gpl", "lgpl", "agpl"):
            key = f"{key}-{m.group(1).split('.')[0]}" if key != "lgpl" else key
        out.add(_R_LICENSES.get(key) or family_of_license(item))
    return frozenset(out or {"none"})


def licensed(families: frozenset[str], include: Iterable[str], exclude: Iterable[str]) -> bool:
    """Kept when one alternative is included (or nothing is required) and not every one is excluded."""
    inc, exc = set(include), set(exclude)
    if inc and not families & inc:
        return False
    return not (exc and families <= exc)


def published_day(record: Mapping[str, Any]) -> str | None:
    """YYYY-MM-DD of Date/Publication (CRAN's), else Packaged (when it was built); None if neither."""
    for key in ("Date/Publication", "Packaged"):
        m = re.match(r"\s*(\d{4}-\d\d-\d\d)", str(record.get(key) or ""))
        if m:
            return m.group(1)
    return None


# -- selection ---------------------------------------------------------------------------------------

@dataclass
class Selection:
    kept: list[UpstreamPackage]
    counts: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # dependencies the upstream lacks
    dependencies_added: int = 0


def channel_requirements(specs: Iterable[str]) -> list[cran.RRequirement]:
    """A channel's exclude specs that read as R requirements (others are conda MatchSpecs, which
    name no R package)."""
    out = []
    for text in specs:
        try:
            out.append(cran.parse_requirement(text))
        except InvalidInput:
            continue
    return out


def select(packages: list[UpstreamPackage], filters: Mapping[str, Any],
           channel: Mapping[str, Any] | None = None) -> Selection:
    """Apply the channel's filters (licenses, exclude specs), then the mirror's; a package is counted
    under the first filter that drops it (``channel_license``, ``channel_exclude_specs``, ...)."""
    channel = channel or {}
    ch_inc, ch_exc = channel.get("include_licenses") or [], channel.get("exclude_licenses") or []
    ch_specs = channel_requirements(channel.get("exclude_specs") or [])
    only = [cran.parse_requirement(t) for t in filters.get("only_specs") or []]
    exclude = [cran.parse_requirement(t) for t in filters.get("exclude_specs") or []]
    include = [cran.parse_requirement(t) for t in filters.get("include_specs") or []]
    inc_lic, exc_lic = filters.get("include_licenses") or [], filters.get("exclude_licenses") or []
    date_from, date_to = filters.get("date_from"), filters.get("date_to")
    counts = {"only_specs": 0, "exclude_specs": 0, "license": 0, "date": 0, "channel_license": 0,
              "channel_exclude_specs": 0}
    if date_from and not any(published_day(p.record) for p in packages if not p.archived):
        # CRAN's own PACKAGES carries no dates: a window would silently drop every package.
        raise InvalidInput("The upstream's PACKAGES index lists no Date/Publication (nor Packaged) field, "
                           "so the date window cannot be applied",
                           "Clear it with --date_from \"\" (CRAN's own index has no dates), or mirror from a "
                           "repository whose PACKAGES lists Date/Publication", code="upstream_has_no_dates")
    kept = []
    for p in packages:
        if (ch_inc or ch_exc) and not p.archived and not licensed(
                r_license_families(p.record.get("License")), ch_inc, ch_exc):
            counts["channel_license"] += 1
            continue
        if ch_specs and any(r.matches(p.name, p.version) for r in ch_specs):
            counts["channel_exclude_specs"] += 1
            continue
        if only and not any(r.matches(p.name, p.version) for r in only):
            counts["only_specs"] += 1
            continue
        if exclude and any(r.matches(p.name, p.version) for r in exclude) and not any(
                r.matches(p.name, p.version) for r in include):
            counts["exclude_specs"] += 1
            continue
        if (inc_lic or exc_lic) and not p.archived and not licensed(
                r_license_families(p.record.get("License")), inc_lic, exc_lic):
            counts["license"] += 1
            continue
        if date_from and not p.archived:
            day = published_day(p.record)
            if day is None or not date_from <= day <= date_to:
                counts["date"] += 1
                continue
        kept.append(p)
    return Selection(kept, counts)


def with_dependencies(sel: Selection, packages: list[UpstreamPackage]) -> Selection:
    """Add the closure over Depends, Imports and LinkingTo (never Suggests) of the kept packages:
    for each dependency the newest upstream version meeting the constraint. R itself and its base
    and recommended packages are never missing; anything else the upstream lacks is listed."""
    by_name: dict[str, list[UpstreamPackage]] = {}
    for p in packages:
        by_name.setdefault(p.name, []).append(p)
    for versions in by_name.values():
        versions.sort(key=lambda p: cran.version_key(p.version), reverse=True)
    chosen = {(p.name, p.version): p for p in sel.kept}
    queue = [p for p in sel.kept if not p.archived]
    missing: set[str] = set()
    added = 0
    while queue:
        p = queue.pop()
        for dep, text in cran.dependencies(p.record):
            if cran.is_shipped_with_r(dep):
                continue
            try:
                req = cran.parse_requirement(text)
            except InvalidInput:  # a constraint we cannot read: take the name alone
                req = cran.RRequirement(dep)
            candidates = [c for c in by_name.get(dep, []) if req.matches(c.name, c.version)]
            if not candidates:
                missing.add(dep)
                continue
            if any((c.name, c.version) in chosen for c in candidates):
                continue
            best = candidates[0]
            chosen[(best.name, best.version)] = best
            queue.append(best)
            added += 1
    sel.kept = list(chosen.values())
    sel.missing = sorted(missing)
    sel.dependencies_added = added
    return sel
