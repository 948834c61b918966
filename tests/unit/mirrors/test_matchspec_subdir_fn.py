"""MatchSpec keys that rattler's matches() skips but conda tests: subdir and fn."""

from __future__ import annotations

import pytest

from taipan.domain.filters import compile_filters, select
from taipan.domain.matchspec import parse_spec

REC = {"name": "zlib", "version": "1.3", "build": "h0_0", "build_number": 0, "subdir": "linux-64",
       "fn": "zlib-1.3-h0_0.conda"}


@pytest.mark.parametrize(("text", "want"), [
    ("zlib[subdir=osx-64]", False),
    ("zlib[subdir=linux-64]", True),
    ("conda-forge/osx-64::zlib", False),
    ("conda-forge/linux-64::zlib", True),
    ("zlib[fn=other-1.0-0.conda]", False),
    ("zlib[fn=zlib-1.3-h0_0.conda]", True),
    ("zlib", True),
])
def test_subdir_and_fn_are_tested(text: str, want: bool) -> None:
    assert parse_spec(text).matches(REC) is want


def test_exclude_spec_with_subdir_only_drops_that_subdir() -> None:
    osx = {**REC, "subdir": "osx-64", "fn": "zlib-1.3-h0_0.conda"}
    upstream = {"linux-64": {"zlib-1.3-h0_0.conda": REC}, "osx-64": {"zlib-1.3-h0_0.conda": osx}}
    sel = select(upstream, compile_filters({"exclude_specs": ["zlib[subdir=osx-64]"]}))
    assert set(sel.kept["linux-64"]) == {"zlib-1.3-h0_0.conda"} and not sel.kept["osx-64"]
    assert sel.counts["mirror_filtered"]["exclude_specs"] == 1
