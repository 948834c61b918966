"""The streaming selector against the in-memory engine: same kept records, same counts, in every filter
mode (plain, only specs, the dependency closure through a spool, CVE filters)."""

from __future__ import annotations

import io
import random
from typing import Any

import pytest

from taipan.domain.filters import compile_filters, select
from taipan.domain.stream_filters import StreamSelector

LICENSES = ["MIT", "BSD-3-Clause", "GPL-3.0-only", "Apache-2.0", ""]


def synthetic(seed: int) -> dict[str, dict[str, dict[str, Any]]]:
    """Three subdirs of random records: versions, builds, .tar.bz2 twins, noarch packages, dependencies
    with version ranges, virtual packages and specs that do not parse."""
    rnd = random.Random(seed)
    names = [f"p{i}" for i in range(60)]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for subdir in ("linux-64", "osx-64", "noarch"):
        conda: dict[str, Any] = {}
        legacy: dict[str, Any] = {}
        for i in range(400):
            name = rnd.choice(names)
            version = f"{rnd.randint(1, 4)}.{rnd.randint(0, 9)}"
            build = f"h{i:04x}_{rnd.randint(0, 2)}"
            depends = [f"{rnd.choice(names)} {rnd.choice(['', '>=2', '<3', '2.*', '>=1.5,<4'])}".strip()
                       for _ in range(rnd.randint(0, 3))]
            depends += rnd.choice([[], ["__glibc >=2.17"], ["bad spec (("]])
            rec = {"name": name, "version": version, "build": build, "build_number": 0, "subdir": subdir,
                   "depends": depends, "license": rnd.choice(LICENSES), "timestamp": 1700000000000 + i * 3_600_000}
            stem = f"{name}-{version}-{build}"
            kind = rnd.randint(0, 2)
            if kind:
                conda[stem + ".conda"] = rec
            if kind != 1:
                legacy[stem + ".tar.bz2"] = rec
        out[subdir] = {"packages.conda": conda, "packages": legacy}
    return out


def cve_of(subdir: str, rec: Any) -> tuple[float | None, str | None]:
    """A made-up CVE store: some names score high, some have uncurated CVEs."""
    n = int(rec["name"][1:])
    if n % 7 == 0:
        return 9.1, "active"
    if n % 5 == 0:
        return 4.0, "reported"
    return None, None


def streamed(upstream: dict[str, dict[str, dict[str, Any]]], filters: dict[str, Any],
             channel: dict[str, Any] | None = None) -> tuple[dict[str, set[str]], dict[str, Any], int, int]:
    compiled = compile_filters(filters, channel)
    selector = StreamSelector(compiled, cve_of, io.BytesIO() if compiled.closes_dependencies else None)
    kept: dict[str, set[str]] = {}
    for subdir, sections in upstream.items():
        if not selector.wants(subdir):
            continue
        for section in ("packages.conda", "packages"):
            for fn, rec in sections[section].items():
                if selector.keep(subdir, fn, rec):
                    kept.setdefault(subdir, set()).add(fn)
    for subdir, fn, rec in selector.closure():
        assert rec == upstream[subdir]["packages.conda" if fn.endswith(".conda") else "packages"][fn]
        kept.setdefault(subdir, set()).add(fn)
    return kept, selector.counts, selector.evaluated, selector.kept_count


def in_memory(upstream: dict[str, dict[str, dict[str, Any]]], filters: dict[str, Any],
              channel: dict[str, Any] | None = None) -> tuple[dict[str, set[str]], dict[str, Any], int, int]:
    records = {sd: {**s["packages"], **s["packages.conda"]} for sd, s in upstream.items()}
    sel = select(records, compile_filters(filters, channel), cve_of)
    return {sd: set(recs) for sd, recs in sel.kept.items() if recs}, sel.counts, sel.evaluated, sel.kept_count


CASES = [
    ({}, None),
    ({"only_specs": ["p1", "p2 >=3"]}, None),
    ({"only_specs": ["p1", "p2 >=3"], "include_dependencies": True}, None),
    ({"only_specs": ["p1*"], "include_dependencies": True, "exclude_licenses": ["gpl3"],
      "date_from": "2023-11-15", "date_to": "2024-03-01"}, {"exclude_specs": ["p3"]}),
    ({"only_specs": ["p4 2.*"], "include_dependencies": True, "subdirs": ["osx-64", "noarch"]}, None),
    ({"only_specs": ["p6"], "include_dependencies": True, "cve_score_threshold": 9.0},
     {"exclude_non_curated_cve": True}),
    ({"cve_score_threshold": 7.0, "exclude_specs": ["p1*"], "include_specs": ["p11"]}, None),
    ({}, {"exclude_non_curated_cve": True}),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("filters", "channel"), CASES)
def test_streamed_selection_is_the_in_memory_selection(seed: int, filters: dict[str, Any],
                                                       channel: dict[str, Any] | None) -> None:
    upstream = synthetic(seed)
    got, want = streamed(upstream, filters, channel), in_memory(upstream, filters, channel)
    assert got[0] == want[0]
    assert got[1] == want[1]
    assert got[2:] == want[2:]


def test_the_closure_pulls_in_dependencies_and_counts_them() -> None:
    upstream = synthetic(3)
    alone = streamed(upstream, {"only_specs": ["p9"]})
    closed = streamed(upstream, {"only_specs": ["p9"], "include_dependencies": True})
    assert closed[3] > alone[3] > 0
    assert {fn.split("-")[0] for fns in closed[0].values() for fn in fns} > {"p9"}
    assert closed[1]["mirror_filtered"]["duplicated_legacy_conda"] > 0
    assert closed[1]["mirror_filtered"]["only_specs"] < alone[1]["mirror_filtered"]["only_specs"]


def test_the_closure_needs_a_spool() -> None:
    with pytest.raises(ValueError, match="spool"):
        StreamSelector(compile_filters({"only_specs": ["p1"], "include_dependencies": True}))


class Stop(Exception):
    pass


def test_the_closure_stops_when_check_raises() -> None:
    """One dependency whose candidates all fail to match: the closure looks through every one of them,
    and a stop asked meanwhile ends it within CHECK_EVERY records, not at the end."""
    from taipan.domain import stream_filters

    calls: list[int] = []
    selector = None

    def check() -> None:
        assert selector is not None
        calls.append(selector._pool.reads)  # type: ignore[union-attr]
        if len(calls) == 3:
            raise Stop

    compiled = compile_filters({"only_specs": ["a"], "include_dependencies": True})
    selector = StreamSelector(compiled, None, io.BytesIO(), check=check)
    n = 5 * stream_filters.CHECK_EVERY
    rec = {"build": "0", "build_number": 0, "subdir": "linux-64"}
    assert not selector.keep("linux-64", "a-1-0.conda", {**rec, "name": "a", "version": "1", "depends": ["b >=9"]})
    for i in range(n):
        selector.keep("linux-64", f"b-1.{i}-0.conda", {**rec, "name": "b", "version": f"1.{i}"})
    assert selector.pooled == n + 1
    with pytest.raises(Stop):
        list(selector.closure())
    # once for the dependency, then every CHECK_EVERY records read back: stopped long before n reads
    assert calls == [1, stream_filters.CHECK_EVERY, 2 * stream_filters.CHECK_EVERY]
