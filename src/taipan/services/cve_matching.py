"""Matching CVEs to files: an in-memory index of affected package keys, and the writes that follow
(``cve_files`` rows, each file's ``cve_score``/``cve_status``).

The index maps ``(ecosystem, package key)`` to the affects of that key; a file looks up the keys of
the ecosystems its family reads (``domain.cve.FAMILY_SOURCES``) and compares its version with the
family's own ``version_key``. Matching a subset (one upload, the names an import touched, a channel
after a mirror sync) loads only the affects of the keys those files have.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from importlib import resources
from string import ascii_letters
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.orm import Session

from taipan.db.cves import CpeMapping, Cve, CveAffect, CveFile
from taipan.db.models import File
from taipan.domain import cve as rules
from taipan.domain import families
from taipan.errors import InvalidInput

CHUNK = 500
# Past this many names, one pass over every file is cheaper than many lookups.
FULL_MATCH_ABOVE = 5_000


def shipped_mappings() -> dict[str, list[str]]:
    text = resources.files("taipan.domain").joinpath("data/cpe_packages.json").read_text()
    return {k: list(v) for k, v in json.loads(text).items() if not k.startswith("_")}


def mappings(db: Session) -> dict[str, list[str]]:
    """The shipped table with the admins' entries over it."""
    out = shipped_mappings()
    for row in db.scalars(select(CpeMapping)):
        out[row.product] = list(row.packages)
    return out


def packages_for(product: str, table: dict[str, list[str]]) -> list[str]:
    """The package names a CPE ``vendor:product`` means."""
    if product in table:
        return table[product]
    return [rules.product_fallback(product.split(":", 1)[-1])]


def file_keys(family: str, name: str) -> list[tuple[str, str]]:
    return [(eco, rules.ecosystem_key(eco, name)) for eco in rules.FAMILY_SOURCES.get(family, ())]


class Index:
    """``(ecosystem, package) -> [(cve_id, spec)]`` for some or all keys."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = defaultdict(list)

    def add(self, eco: str, package: str, cve_id: str, spec: dict[str, Any]) -> None:
        self.by_key[(eco, package)].append((cve_id, spec))

    @classmethod
    def load(cls, db: Session, keys: Iterable[tuple[str, str]] | None = None) -> Index:
        index = cls()
        q = select(CveAffect.ecosystem, CveAffect.package, CveAffect.cve_id, CveAffect.spec)
        if keys is None:
            for eco, pkg, cve_id, spec in db.execute(q.execution_options(yield_per=20_000)):
                index.add(eco, pkg, cve_id, spec)
            return index
        wanted = sorted(set(keys))
        for i in range(0, len(wanted), CHUNK):
            part = wanted[i:i + CHUNK]
            for eco, pkg, cve_id, spec in db.execute(
                    q.where(tuple_(CveAffect.ecosystem, CveAffect.package).in_(part))):
                index.add(eco, pkg, cve_id, spec)
        return index


def _version_key(family: str) -> Any:
    try:
        fam = families.get(family)
    except InvalidInput:
        return None
    cache: dict[str, Any] = {}

    def key(v: str) -> Any:
        if v not in cache:
            if len(cache) > 100_000:
                cache.clear()
            cache[v] = fam.version_key(v)
        return cache[v]
    return key


FileRow = tuple[str, str, str, str, str, float | None, str | None]  # id, family, name, version, subdir, score, status
FLUSH = 20_000


def _rows(db: Session, where: Any | None) -> Iterator[FileRow]:
    q = select(File.id, File.family, File.name, File.version, File.subdir, File.cve_score, File.cve_status)
    if where is not None:
        q = q.where(where)
    else:
        q = q.order_by(File.name)  # the name index: one package's files arrive together
    yield from db.execute(q.execution_options(yield_per=FLUSH))


class _Writer:
    """Buffered writes of match rows and file summaries, through the driver (no ORM per row)."""

    def __init__(self, db: Session) -> None:
        self.conn = db.connection()
        mark = "?" if self.conn.dialect.paramstyle == "qmark" else "%s"
        self.insert_sql = f"INSERT INTO cve_files (cve_id, file_id) VALUES ({mark}, {mark})"
        self.update_sql = f"UPDATE files SET cve_score = {mark}, cve_status = {mark} WHERE id = {mark}"
        self.pairs: list[tuple[str, str]] = []
        self.updates: list[tuple[float | None, str | None, str]] = []
        self.matches = self.changed = 0
        # The files whose score or status changed (when kept: a match of some files, not all).
        self.changed_ids: list[str] | None = None

    def add(self, pairs: list[tuple[str, str]], update: tuple[float | None, str | None, str] | None) -> None:
        self.pairs += pairs
        self.matches += len(pairs)
        if update is not None:
            self.updates.append(update)
            self.changed += 1
            if self.changed_ids is not None:
                self.changed_ids.append(update[2])
        if len(self.pairs) >= FLUSH or len(self.updates) >= FLUSH:
            self.flush()

    def flush(self) -> None:
        if self.pairs:
            self.conn.exec_driver_sql(self.insert_sql, self.pairs)
            self.pairs = []
        if self.updates:
            self.conn.exec_driver_sql(self.update_sql, self.updates)
            self.updates = []


def _by_name(rows: Iterable[FileRow]) -> Iterator[list[FileRow]]:
    group: list[FileRow] = []
    for row in rows:
        if group and row[2] != group[0][2]:
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def match_files(db: Session, where: Any | None = None, *, index: Index | None = None) -> dict[str, int]:
    """Rematch the files ``where`` selects (all files when None): replace their ``cve_files`` rows and
    set their score and status. Files are taken one package name at a time, so memory holds the index
    and one package's files, whatever the number of files. Returns counts."""
    rows = sorted(_rows(db, where), key=lambda r: r[2]) if where is not None else None
    if index is None:
        index = Index.load(db, None if rows is None else {k for r in rows for k in file_keys(r[1], r[2])})
    states = _cve_states(db, None if rows is None else {c for specs in index.by_key.values() for c, _ in specs})
    writer = _Writer(db)
    if rows is None:
        writer.conn.execute(delete(CveFile))
    else:
        writer.changed_ids = []
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), CHUNK):
            writer.conn.execute(delete(CveFile).where(CveFile.file_id.in_(ids[i:i + CHUNK])))
    keys: dict[str, Any] = {}
    seen = with_cves = 0
    for group in _by_name(rows if rows is not None else _rows(db, None)):
        seen += len(group)
        found: dict[str, set[str]] = defaultdict(set)
        by_key: dict[tuple[str, str, str], dict[str, list[tuple[str, str]]]] = defaultdict(lambda: defaultdict(list))
        for fid, family, name, version, subdir, _, _ in group:
            for k in file_keys(family, name):
                if k in index.by_key:
                    by_key[(family, *k)][version].append((fid, subdir))
        for (family, eco, package), by_version in by_key.items():
            if family not in keys:
                keys[family] = _version_key(family)
            if keys[family] is not None:
                _match_group(eco, index.by_key[(eco, package)], by_version, keys[family], found)
        for fid, _, _, _, _, score, status in group:
            cves = found.get(fid)
            new = rules.file_summary(states[c] for c in cves if c in states) if cves else (None, None)
            if cves:
                with_cves += 1
            writer.add([(c, fid) for c in cves] if cves else [],
                       (new[0], new[1], fid) if new != (score, status) else None)
    writer.flush()
    return {"files": seen, "files_with_cves": with_cves, "matches": writer.matches, "changed": writer.changed,
            **_enforce(db, writer.changed_ids)}


def match_ids(db: Session, file_ids: list[str]) -> None:
    """``match_files`` of these files (by batches of ids)."""
    for i in range(0, len(file_ids), CHUNK):
        match_files(db, File.id.in_(file_ids[i:i + CHUNK]))


def _enforce(db: Session, changed: list[str] | None) -> dict[str, int]:
    """Channel CVE filters hold again after scores changed (see cve_enforcement): over the files whose
    score or status changed (``changed``), or every file of the channels with CVE filters (None)."""
    from taipan.services import cve_enforcement

    if changed is not None:
        return cve_enforcement.enforce(db, file_ids=changed)
    return cve_enforcement.enforce(db, cve_enforcement.channels_with_cve_filters(db))


def _match_group(eco: str, specs: list[tuple[str, dict[str, Any]]], by_version: dict[str, list[tuple[str, str]]],
                 key: Any, matches: dict[str, set[str]]) -> None:
    """Match the versions of one package against its affects. For CPE ranges the sorted versions are
    cut by bisection (the family's order); only versions the range's bounds are a prefix of (where
    NVD's letter rule may differ from the family's order) are decided one by one."""
    versions = list(by_version)
    try:
        ordered = sorted(((key(v), v) for v in versions), key=lambda kv: kv[0])
        vks = [vk for vk, _ in ordered]
    except TypeError:  # incomparable keys: decide every version on its own
        ordered = []
    texts = (set(versions), sorted(versions))
    for cve_id, spec in specs:
        if eco != "cpe" or not ordered:
            # Platforms are checked per file below, so any partition will do here.
            hits = [v for v in versions if rules.affected(eco, spec, v, key, "noarch")]
        else:
            hits = _cpe_hits(spec, ordered, vks, versions, key, texts)
        platforms = spec.get("platforms") if eco == "cpe" else None
        for v in hits:
            for fid, subdir in by_version[v]:
                if platforms:
                    os_name = rules.subdir_os(subdir)
                    if os_name is not None and os_name not in platforms:
                        continue
                matches[fid].add(cve_id)


def _letter_neighbours(bounds: list[str], texts: tuple[set[str], list[str]]) -> set[str]:
    """The versions where NVD's letter rule may disagree with the family's order: a bound plus letters
    (1.1.1t for 1.1.1), or a bound without its trailing letters."""
    present, in_order = texts
    out: set[str] = set()
    for b in bounds:
        stem = b.rstrip(ascii_letters)
        if stem != b and stem in present:
            out.add(stem)
        i = bisect_left(in_order, b)
        while i < len(in_order) and in_order[i].startswith(b):
            if in_order[i] != b and in_order[i][len(b):].isalpha():
                out.add(in_order[i])
            i += 1
    return out


def _cpe_hits(spec: dict[str, Any], ordered: list[tuple[Any, str]], vks: list[Any], versions: list[str],
              key: Any, texts: tuple[set[str], list[str]]) -> list[str]:
    bounds = [spec[b] for b in ("exact", "start_incl", "start_excl", "end_incl", "end_excl") if b in spec]
    try:
        lo, hi = 0, len(ordered)
        if "exact" in spec:
            b = key(spec["exact"])
            lo, hi = bisect_left(vks, b), bisect_right(vks, b)
        if "start_incl" in spec:
            lo = max(lo, bisect_left(vks, key(spec["start_incl"])))
        if "start_excl" in spec:
            lo = max(lo, bisect_right(vks, key(spec["start_excl"])))
        if "end_incl" in spec:
            hi = min(hi, bisect_right(vks, key(spec["end_incl"])))
        if "end_excl" in spec:
            hi = min(hi, bisect_left(vks, key(spec["end_excl"])))
    except TypeError:
        return [v for v in versions if rules.cpe_affected(spec, v, key, None)]
    special = _letter_neighbours(bounds, texts)
    hits = [v for _, v in ordered[lo:hi] if v not in special]
    hits += [v for v in special if rules.cpe_affected(spec, v, key, None)]
    return hits


def _cve_states(db: Session, cve_ids: Iterable[str] | None) -> dict[str, tuple[float | None, str]]:
    """{CVE id: (score, status)} of these CVEs (of all when None)."""
    out: dict[str, tuple[float | None, str]] = {}
    if cve_ids is None:
        for cid, score, status in db.execute(select(Cve.id, Cve.score, Cve.status)
                                             .execution_options(yield_per=FLUSH)):
            out[cid] = (score, status)
        return out
    ids = sorted(set(cve_ids))
    for i in range(0, len(ids), CHUNK):
        for cid, score, status in db.execute(select(Cve.id, Cve.score, Cve.status).where(
                Cve.id.in_(ids[i:i + CHUNK]))):
            out[cid] = (score, status)
    return out


def _write_summaries(db: Session, matches: dict[str, set[str]],
                     old: dict[str, tuple[float | None, str | None]]) -> list[str]:
    """Write the files' new scores and statuses; the ids of those that changed."""
    states = _cve_states(db, {c for cs in matches.values() for c in cs})
    new: dict[str, tuple[float | None, str | None]] = {
        fid: rules.file_summary(states[c] for c in cs if c in states) for fid, cs in matches.items()}
    updates = [{"fid": fid, "s": s, "st": st} for fid, (s, st) in new.items() if old.get(fid) != (s, st)]
    updates += [{"fid": fid, "s": None, "st": None} for fid in old if fid not in new]
    stmt = update(File).where(File.id == _bind("fid")).values(cve_score=_bind("s"), cve_status=_bind("st"))
    conn = db.connection()
    for i in range(0, len(updates), 5_000):
        conn.execute(stmt, updates[i:i + 5_000])
    return [u["fid"] for u in updates]


def _bind(name: str) -> Any:
    return bindparam(name)


def refresh_summaries(db: Session, cve_ids: Iterable[str]) -> list[str]:
    """Recompute the score and status of the files of these CVEs (after a curation); returns their ids."""
    ids = sorted(set(cve_ids))
    file_ids: set[str] = set()
    for i in range(0, len(ids), CHUNK):
        file_ids.update(db.scalars(select(CveFile.file_id).where(CveFile.cve_id.in_(ids[i:i + CHUNK]))))
    fids = sorted(file_ids)
    matches: dict[str, set[str]] = defaultdict(set)
    old: dict[str, tuple[float | None, str | None]] = {}
    for i in range(0, len(fids), CHUNK):
        part = fids[i:i + CHUNK]
        for fid, cid in db.execute(select(CveFile.file_id, CveFile.cve_id).where(CveFile.file_id.in_(part))):
            matches[fid].add(cid)
        for fid, s, st in db.execute(select(File.id, File.cve_score, File.cve_status).where(File.id.in_(part))):
            old[fid] = (s, st)
    _enforce(db, _write_summaries(db, dict(matches), old))
    return fids


def names_for_keys(keys: Iterable[tuple[str, str]]) -> set[str]:
    """File names that may have these package keys (the index on files.name finds them)."""
    names: set[str] = set()
    for eco, key in keys:
        names.add(key)
        if eco == "PyPI":
            names.update({key.replace("-", "_"), key.replace("-", ".")})
    return names


def match_names(db: Session, keys: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Rematch the files whose names have these package keys."""
    names = sorted(names_for_keys(keys))
    if len(names) > FULL_MATCH_ABOVE:
        return match_files(db, None)
    total = {"files": 0, "files_with_cves": 0, "matches": 0, "changed": 0}
    for i in range(0, len(names), CHUNK):
        part = names[i:i + CHUNK]
        lowered = [n.lower() for n in part]
        counts = match_files(db, or_(File.name.in_(part), func.lower(File.name).in_(lowered)))
        for k in total:
            total[k] += counts[k]
    return total
