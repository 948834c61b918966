"""The pure part of CRAN mirrors: reading PACKAGES and Archive listings, R license families, the
filters with their counters, and the dependency closure."""

from __future__ import annotations

import pytest

from taipan.domain import cran_upstream as cu

PACKAGES = b"""Package: AA
Version: 1.0
Depends: R (>= 4.0), BB (>= 2.0)
Imports: stats, Matrix, CC
Suggests: DD
License: GPL-2 | GPL-3
MD5sum: 0123456789abcdef0123456789abcdef

Package: BB
Version: 2.1
LinkingTo: Rcpp
License: MIT + file LICENSE
Date/Publication: 2023-05-01 10:00:00 UTC

Package: CC
Version: 0.5
License: Apache License (== 2.0)
Path: old

Package: DD
Version: 1.0
License: AGPL-3

Package: bad name
Version: 1
"""


def test_parse_packages_honours_path_and_skips_invalid() -> None:
    pkgs = cu.parse_packages(PACKAGES, "http://h/cran/src/contrib/")
    assert [(p.name, p.version) for p in pkgs] == [("AA", "1.0"), ("BB", "2.1"), ("CC", "0.5"), ("DD", "1.0")]
    assert pkgs[2].url == "http://h/cran/src/contrib/old/CC_0.5.tar.gz"
    assert pkgs[0].md5 == "0123456789abcdef0123456789abcdef" and pkgs[0].sha256 == ""
    assert pkgs[0].record["Depends"] == "R (>= 4.0), BB (>= 2.0)"


def test_archive_listing() -> None:
    html = b'<a href="?C=N;O=D">Name</a><a href="../">Parent</a><a href="AA_0.9.tar.gz">AA_0.9.tar.gz</a>' \
           b'<a href="AA_0.8-1.tar.gz">x</a><a href="BBB_1.0.tar.gz">other package</a>'
    got = cu.parse_archive_listing("AA", html, "http://h/src/contrib/Archive/AA/")
    assert [(p.version, p.url, p.archived) for p in got] == [
        ("0.9", "http://h/src/contrib/Archive/AA/AA_0.9.tar.gz", True),
        ("0.8-1", "http://h/src/contrib/Archive/AA/AA_0.8-1.tar.gz", True)]


@pytest.mark.parametrize(("text", "families"), [
    ("GPL-2", {"gpl2"}), ("GPL-3", {"gpl3"}), ("GPL (>= 2)", {"gpl2"}), ("GPL (>= 3.0)", {"gpl3"}),
    ("GPL-2 | GPL-3", {"gpl2", "gpl3"}), ("LGPL-2.1", {"lgpl"}), ("LGPL (>= 2)", {"lgpl"}), ("AGPL-3", {"agpl"}),
    ("MIT + file LICENSE", {"mit"}), ("BSD_3_clause + file LICENSE", {"bsd"}), ("BSD_2_clause + file LICENCE", {"bsd"}),
    ("Apache License (== 2.0)", {"apache"}), ("Apache License 2.0", {"apache"}), ("CC0", {"public_domain"}),
    ("file LICENSE", {"other"}), ("Artistic-2.0", {"other"}), ("", {"none"}),
])
def test_r_license_families(text: str, families: set[str]) -> None:
    assert cu.r_license_families(text) == families


def test_select_counts_each_filter_and_closure_never_follows_suggests() -> None:
    pkgs = cu.parse_packages(PACKAGES, "http://h/src/contrib/")
    sel = cu.select(pkgs, {"exclude_licenses": ["agpl"]})
    assert {p.name for p in sel.kept} == {"AA", "BB", "CC"} and sel.counts["license"] == 1
    # Either alternative of "GPL-2 | GPL-3" admits A; excluding one alternative only does not drop it.
    assert {p.name for p in cu.select(pkgs, {"include_licenses": ["gpl3"]}).kept} == {"AA"}
    assert {p.name for p in cu.select(pkgs, {"exclude_licenses": ["gpl3"]}).kept} == {"AA", "BB", "CC", "DD"}
    sel = cu.select(pkgs, {"date_from": "2023-01-01", "date_to": "2023-12-31"})
    assert [p.name for p in sel.kept] == ["BB"] and sel.counts["date"] == 3
    sel = cu.select(pkgs, {"exclude_specs": ["*"], "include_specs": ["CC"]})
    assert [p.name for p in sel.kept] == ["CC"]  # "*" drops every name, "CC" is re-admitted
    sel = cu.select(pkgs, {"only_specs": ["AA (>= 1.0)"]})
    assert [p.name for p in sel.kept] == ["AA"] and sel.counts["only_specs"] == 3
    sel = cu.with_dependencies(sel, pkgs)
    # B and C (Depends, Imports) come in; stats and Matrix ship with R; Rcpp (B's LinkingTo) is
    # missing upstream; D (Suggests) is never followed.
    assert {p.name for p in sel.kept} == {"AA", "BB", "CC"} and sel.dependencies_added == 2
    assert sel.missing == ["Rcpp"]
    sel = cu.with_dependencies(cu.select(pkgs, {"only_specs": ["AA"]}), [p for p in pkgs if p.name != "BB"] + [
        cu.UpstreamPackage("BB", "1.0", "BB_1.0.tar.gz", "u", {"Package": "BB", "Version": "1.0"}, archived=True)])
    assert "BB" in sel.missing  # only B 1.0 exists, and A needs BB (>= 2.0)


def test_archive_rds_as_taipan_and_r_write_it(tmp_path) -> None:
    import gzip
    import shutil
    import subprocess

    from taipan.domain import cran

    data = gzip.compress(cran.archive_rds({"tpmain": [{"Version": "0.9", "size": 10}, {"Version": "0.8-1"}],
                                           "x.y": [{"Version": "1.0"}]}))
    got = cu.parse_archive_rds(data, "http://h/src/contrib/")
    assert {n: [(p.version, p.url) for p in ps] for n, ps in got.items()} == {
        "tpmain": [("0.8-1", "http://h/src/contrib/Archive/tpmain/tpmain_0.8-1.tar.gz"),
                   ("0.9", "http://h/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz")],
        "x.y": [("1.0", "http://h/src/contrib/Archive/x.y/x.y_1.0.tar.gz")]}
    with pytest.raises(ValueError):
        cu.parse_archive_rds(b"not rds", "http://h/")
    rscript = shutil.which("Rscript")
    if rscript is None:
        return
    # R's own saveRDS (format 3, file.info() data frames, as CRAN writes Meta/archive.rds).
    (tmp_path / "pk" / "pk").mkdir(parents=True)
    for v in ("1.0", "0.9"):
        (tmp_path / "pk" / "pk" / f"pk_{v}.tar.gz").write_bytes(b"x")
    subprocess.run([rscript, "--vanilla", "-e", 'setwd("pk"); saveRDS(list(pk = file.info(c("pk/pk_1.0.tar.gz", '
                    '"pk/pk_0.9.tar.gz"))), "../archive.rds", version = 3)'], cwd=tmp_path, check=True, timeout=60,
                   capture_output=True)
    got = cu.parse_archive_rds((tmp_path / "archive.rds").read_bytes(), "http://h/src/contrib/")
    assert [p.version for p in got["pk"]] == ["1.0", "0.9"]


def test_channel_filters_come_first_and_are_counted_apart() -> None:
    pkgs = cu.parse_packages(PACKAGES, "http://h/src/contrib/")
    sel = cu.select(pkgs, {"exclude_specs": ["CC"]}, {"exclude_licenses": ["mit"],
                                                      "exclude_specs": ["DD (>= 1.0)", "numpy 1.*"]})
    assert [p.name for p in sel.kept] == ["AA"]
    counts = sel.counts
    assert (counts["channel_license"], counts["channel_exclude_specs"], counts["exclude_specs"]) == (1, 1, 1)


def test_a_date_window_over_an_index_without_dates_is_refused_not_silently_empty() -> None:
    # CRAN's own PACKAGES has no Date/Publication: every package would be dropped without a word.
    pkgs = [cu.UpstreamPackage(n, "1.0", f"{n}_1.0.tar.gz", "u", {"Package": n, "Version": "1.0"})
            for n in ("AA", "BB")]
    with pytest.raises(cu.InvalidInput) as exc:
        cu.select(pkgs, {"date_from": "2023-01-01", "date_to": "2023-12-31"})
    assert exc.value.code == "upstream_has_no_dates" and "date_from" in exc.value.hint
    assert [p.name for p in cu.select(pkgs, {}).kept] == ["AA", "BB"]
