"""The mirror filters applied one upstream record at a time, in bounded memory, in every filter mode.

``StreamSelector`` gives the same counts and the same kept records as ``filters.select`` over the same
records (``filters.select`` holds every record; it stays the reference, and the engine of the
one-record channel checks on uploads and copies).

With ``only_specs`` + ``include_dependencies`` the dependency closure needs every candidate, not only
the records seen so far. Those runs keep the records that pass the other filters in a spool (one JSON
line each, in a binary file the caller provides, e.g. a temporary file on disk) and in memory only a few
bytes per record: its offset in the spool, its subdir, whether it is chosen, and its position in the
list of its name. The closure reads the candidates of a dependency back from the spool by name, and a
last pass over the spool yields what is kept. At 1.5M records that is about 20 MB, where the records
themselves would take gigabytes.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import orjson

from taipan.domain.filters import CompiledFilters, CveOf, cve_drop, dep_spec, empty_counts, first_drop
from taipan.domain.matchspec import Spec, package_record

# Parsed dependency specs kept between lookups (a cache: cleared when full).
SPECS_CACHED = 50_000
# The closure calls ``check`` after this many records read back from the spool (and once per
# dependency followed), so that a stop request ends even one long lookup promptly.
CHECK_EVERY = 1024


class StreamSelector:
    """``filters.select`` one record at a time.

    Give it each wanted subdir's records in turn, ``packages.conda`` first, then ``packages``
    (.tar.bz2): a .tar.bz2 is dropped when the .conda of the same build was kept, as in ``select``.
    ``keep`` says whether a record is kept; then ``closure()`` yields the records the dependency
    closure keeps (nothing unless the filters close over dependencies, when ``keep`` answers False for
    every record and all of them come from ``closure()``). ``cve_of`` is the CVE assessor that the CVE
    filters need (as for ``select``); ``spool`` a binary file, needed when the filters close over
    dependencies (``CompiledFilters.closes_dependencies``). ``check`` is called now and then while the
    closure runs (it can take minutes over a large upstream): it raises to stop it.
    """

    def __init__(self, filters: CompiledFilters, cve_of: CveOf | None = None, spool: IO[bytes] | None = None,
                 check: Callable[[], None] | None = None) -> None:
        self.filters = filters
        self.cve_of = cve_of if filters.uses_cves else None
        self.counts = empty_counts()
        self.evaluated = 0
        self.kept_count = 0
        self._legacy = _LegacyTwins(self.counts)
        self._pool: _Pool | None = None
        if filters.closes_dependencies:
            if spool is None:
                raise ValueError("only_specs with include_dependencies needs a spool file")
            self._pool = _Pool(spool, check or _go_on)

    @property
    def pooled(self) -> int:
        """How many candidates the dependency closure will look through."""
        return 0 if self._pool is None else len(self._pool.offsets)

    def wants(self, subdir: str) -> bool:
        return self.filters.subdirs is None or subdir in self.filters.subdirs

    def keep(self, subdir: str, fn: str, rec: Mapping[str, Any]) -> bool:
        f, counts = self.filters, self.counts
        self.evaluated += 1
        drop = first_drop(rec, f)
        if drop is None and self.cve_of is not None:
            drop = cve_drop(subdir, rec, f, self.cve_of)
        if drop is not None:
            counts[drop[0]][drop[1]] = counts[drop[0]].get(drop[1], 0) + 1
            return False
        chosen = not f.only or (f.only.could_match(str(rec.get("name", ""))) and f.only.any_match(rec))
        if self._pool is not None:
            self._pool.add(subdir, fn, rec, chosen)
            return False
        if not chosen:
            counts["mirror_filtered"]["only_specs"] += 1
            return False
        return self._kept(subdir, fn)

    def closure(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """(subdir, filename, record) of the records the dependency closure keeps, in the order given."""
        if self._pool is None:
            return
        self._pool.close_over_dependencies()
        for subdir, fn, rec, chosen in self._pool.records():
            if not chosen:
                self.counts["mirror_filtered"]["only_specs"] += 1
            elif self._kept(subdir, fn):
                yield subdir, fn, rec

    def _kept(self, subdir: str, fn: str) -> bool:
        if self._legacy.duplicate(subdir, fn):
            return False
        self.kept_count += 1
        return True


def _go_on() -> None:
    pass


class _LegacyTwins:
    """Drops ``X.tar.bz2`` when ``X.conda`` of the same subdir was kept before it."""

    def __init__(self, counts: dict[str, Any]) -> None:
        self.counts = counts
        self.subdir: str | None = None
        self.stems: set[str] = set()

    def duplicate(self, subdir: str, fn: str) -> bool:
        if subdir != self.subdir:
            self.subdir, self.stems = subdir, set()
        if fn.endswith(".conda"):
            self.stems.add(fn[:-6])
        elif fn.endswith(".tar.bz2") and fn[:-8] in self.stems:
            self.counts["mirror_filtered"]["duplicated_legacy_conda"] += 1
            return True
        return False


class _Pool:
    """The records that passed the non-spec filters, on disk, indexed by name in compact arrays."""

    def __init__(self, spool: IO[bytes], check: Callable[[], None]) -> None:
        self.spool = spool
        self.check = check
        self.reads = 0
        self.start = spool.tell()
        self.end = self.start
        self.offsets = array("q")  # record number -> offset of its line in the spool
        self.subdir_of = bytearray()  # record number -> index in self.subdirs
        self.chosen = bytearray()  # record number -> 1 when in the selection
        self.subdirs: list[str] = []
        self.subdir_index: dict[str, int] = {}
        self.by_name: dict[str, array[int]] = {}
        self.todo = array("q")  # chosen records whose dependencies are not followed yet

    def add(self, subdir: str, fn: str, rec: Mapping[str, Any], chosen: bool) -> None:
        index = self.subdir_index.get(subdir)
        if index is None:
            index = self.subdir_index[subdir] = len(self.subdirs)
            self.subdirs.append(subdir)
        n = len(self.offsets)
        line = orjson.dumps([fn, rec]) + b"\n"
        self.spool.write(line)
        self.offsets.append(self.end)
        self.end += len(line)
        self.subdir_of.append(index)
        self.chosen.append(chosen)
        name = str(rec.get("name", "")).lower()
        numbers = self.by_name.get(name)
        if numbers is None:
            numbers = self.by_name[name] = array("q")
        numbers.append(n)
        if chosen:
            self.todo.append(n)

    def _record(self, n: int) -> dict[str, Any]:
        self.reads += 1
        if self.reads % CHECK_EVERY == 0:
            self.check()
        self.spool.seek(self.offsets[n])
        rec: dict[str, Any] = orjson.loads(self.spool.readline())[1]
        return rec

    def close_over_dependencies(self) -> None:
        """Choose every record a chosen record depends on, transitively (``filters.dependency_closure``:
        every matching version; a platform record's dependencies from its subdir or noarch, a noarch
        record's from any subdir)."""
        self.spool.flush()
        seen_deps: set[tuple[str, str]] = set()
        specs: dict[str, Spec | None] = {}
        while self.todo:
            n = self.todo.pop()
            subdir = self.subdirs[self.subdir_of[n]]
            scope = "*" if subdir == "noarch" else subdir
            for dep in self._record(n).get("depends") or []:
                if (scope, dep) in seen_deps:
                    continue
                self.check()
                seen_deps.add((scope, dep))
                if dep not in specs:
                    if len(specs) >= SPECS_CACHED:
                        specs.clear()
                    specs[dep] = dep_spec(dep)
                spec = specs[dep]
                if spec is not None and spec.name is not None:
                    self._choose_matching(spec, scope)

    def _choose_matching(self, spec: Spec, scope: str) -> None:
        for n in self.by_name.get(spec.name or "", ()):
            if self.chosen[n]:
                continue
            subdir = self.subdirs[self.subdir_of[n]]
            if scope not in ("*", subdir) and subdir != "noarch":
                continue
            if spec.match_spec.matches(package_record(self._record(n))):
                self.chosen[n] = 1
                self.todo.append(n)

    def records(self) -> Iterator[tuple[str, str, dict[str, Any], bool]]:
        """(subdir, filename, record, chosen) of every pooled record, in the order they came."""
        self.spool.seek(self.start)
        for n in range(len(self.offsets)):
            if n % CHECK_EVERY == 0:
                self.check()
            fn, rec = orjson.loads(self.spool.readline())
            yield self.subdirs[self.subdir_of[n]], fn, rec, bool(self.chosen[n])
