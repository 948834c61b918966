"""Mirror filters, MatchSpecs and license families: pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taipan.domain.filters import (
    compile_filters,
    normalize_channel_filters,
    normalize_mirror_filters,
    select,
    validate_cron,
)
from taipan.domain.matchspec import family_of_license, license_family, parse_license_list, parse_spec
from taipan.errors import InvalidInput


def rec(name: str, version: str, build: str = "h0_0", *, subdir: str = "linux-64", depends=(),
        license: str = "MIT", day: str = "2024-06-01", **extra) -> dict:
    ts = int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)
    r = {"name": name, "version": version, "build": build, "build_number": 0, "subdir": subdir,
         "depends": list(depends), "license": license, "timestamp": ts,
         "sha256": "00" * 32, "md5": "00" * 16, "size": 10}
    r.update(extra)
    return r


def fn(r: dict, ext: str = ".conda") -> str:
    return f"{r['name']}-{r['version']}-{r['build']}{ext}"


def repo(*records: dict, ext: str = ".conda") -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for r in records:
        out.setdefault(r["subdir"], {})[fn(r, ext)] = r
    return out


@pytest.mark.parametrize(("text", "family"), [
    ("GPL-3.0-or-later", "gpl3"), ("GPL-2.0-only", "gpl2"), ("GPLv3", "gpl3"), ("GPL", "gpl3"),
    ("LGPL-2.1", "lgpl"), ("LGPL-3.0-or-later", "lgpl"), ("AGPL-3.0", "agpl"),
    ("BSD-3-Clause", "bsd"), ("BSD 2-Clause", "bsd"), ("MIT", "mit"), ("Apache-2.0", "apache"),
    ("Apache Software License", "apache"), ("PSF-2.0", "psf"), ("Python-2.0", "psf"),
    ("Public-Domain", "public_domain"), ("Unlicense", "public_domain"), ("CC0-1.0", "public_domain"),
    ("Proprietary", "proprietary"), ("LicenseRef-Proprietary", "proprietary"), ("", "none"),
    ("MPL-2.0", "other"), ("Zlib", "other"),
])
def test_license_string_families(text: str, family: str) -> None:
    assert family_of_license(text) == family


def test_license_family_field_wins() -> None:
    assert license_family({"license": "Custom", "license_family": "BSD"}) == "bsd"
    assert license_family({"license": "GPL-2.0", "license_family": "GPL2"}) == "gpl2"
    assert license_family({"license": "MIT", "license_family": "weird"}) == "mit"
    assert license_family({}) == "none"


def test_license_list_parsing() -> None:
    assert parse_license_list("-gpl3,mit,+bsd, -public_domain") == (["mit", "bsd"], ["gpl3", "public_domain"])
    with pytest.raises(InvalidInput) as err:
        parse_license_list("mit,wtfpl")
    assert err.value.code == "invalid_license" and "gpl3" in err.value.hint


@pytest.mark.parametrize("bad", ["", "numpy >>1", "numpy[foo=bar]", "@@@", "numpy >=1,<<2"])
def test_invalid_matchspec(bad: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_spec(bad)
    assert err.value.code == "invalid_matchspec"


def test_matchspec_semantics_are_condas() -> None:
    r = rec("numpy", "1.26.4", "py311h0_0")
    assert parse_spec("numpy").matches(r)
    assert parse_spec("numpy >=1.26,<2").matches(r)
    assert parse_spec("numpy 1.26.*").matches(r)
    assert parse_spec("numpy=1.26").matches(r)          # conda's fuzzy '=': 1.26.*
    assert not parse_spec("numpy==1.26").matches(r)     # exact
    assert parse_spec("numpy[build=py311*]").matches(r)
    assert not parse_spec("numpy 1.26.4 py310*").matches(r)
    assert parse_spec("num*").matches(r) and not parse_spec("scipy").matches(r)
    assert parse_spec("NumPy").matches(r)               # names are case-insensitive
    assert parse_spec("numpy[license=MIT]").matches(r)


@pytest.mark.parametrize("expr", ["0 0 * * *", "*/5 * * * *", "30 2 * * 1-5"])
def test_valid_cron(expr: str) -> None:
    assert validate_cron(expr) == expr


@pytest.mark.parametrize("expr", ["", "61 * * * *", "* * * *", "0 0 * * * *", "every day"])
def test_invalid_cron(expr: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_cron(expr)
    assert err.value.code == "invalid_cron"


def test_normalize_filters_validates() -> None:
    got = normalize_mirror_filters({"subdirs": "noarch, linux-64", "include_licenses": ["mit"],
                                    "exclude_licenses": ["gpl3"], "only_specs": ["numpy"],
                                    "date_from": "2024-01-01", "date_to": "2024-12-31"})
    assert got == {"subdirs": ["noarch", "linux-64"], "include_licenses": ["mit"],
                   "exclude_licenses": ["gpl3"], "only_specs": ["numpy"],
                   "date_from": "2024-01-01", "date_to": "2024-12-31"}
    for bad, code in [({"only_specs": ["a"], "exclude_specs": ["b"]}, "invalid_filters"),
                      ({"only_specs": ["a"], "include_specs": ["b"]}, "invalid_filters"),
                      ({"date_from": "2024-01-01", "date_to": "2025-01-02"}, "invalid_date"),
                      ({"date_from": "2024-02-01", "date_to": "2024-01-01"}, "invalid_date"),
                      ({"date_from": "2024-13-01", "date_to": "2024-12-01"}, "invalid_date"),
                      ({"date_from": "2024-01-01"}, "invalid_date"),
                      ({"subdirs": ["linux-65"]}, "unknown_subdir"),
                      ({"include_licenses": ["beer"]}, "invalid_license"),
                      ({"exclude_specs": ["x >>1"]}, "invalid_matchspec"),
                      ({"colour": "red"}, "invalid_filters")]:
        with pytest.raises(InvalidInput) as err:
            normalize_mirror_filters(bad)
        assert err.value.code == code, bad
    # exactly one year (leap day included) is allowed
    assert normalize_mirror_filters({"date_from": "2024-02-29", "date_to": "2025-02-28"})["date_to"]


def test_select_counts_each_filter() -> None:
    a = rec("alpha", "1.0", license="GPL-3.0")
    b = rec("beta", "1.0", license="MIT", day="2023-01-01")
    c = rec("gamma", "2.0", license="BSD-3-Clause")
    d = rec("delta", "1.0", license="Apache-2.0")
    e = rec("eps", "1.0", subdir="noarch", license="MIT")
    up = repo(a, b, c, d, e)
    up["linux-64"][fn(c, ".tar.bz2")] = c  # legacy duplicate of gamma
    f = compile_filters({"exclude_licenses": ["apache"], "date_from": "2024-01-01",
                         "date_to": "2024-12-31", "exclude_specs": ["eps"]},
                        {"exclude_licenses": ["gpl3"]})
    sel = select(up, f)
    assert set(sel.kept["linux-64"]) == {fn(c)}
    assert sel.kept["noarch"] == {}
    assert sel.counts["channel_filtered"] == {"license": 1, "exclude_specs": 0}
    mf = sel.counts["mirror_filtered"]
    assert (mf["date"], mf["license"], mf["exclude_specs"], mf["duplicated_legacy_conda"]) == (1, 1, 1, 1)
    assert sel.evaluated == 6


def test_include_spec_readmits_excluded() -> None:
    recs = [rec("torch", v) for v in ("1.0", "2.0", "2.1")]
    sel = select(repo(*recs), compile_filters({"exclude_specs": ["torch"], "include_specs": ["torch==2.0"]}))
    assert list(sel.kept["linux-64"]) == [fn(recs[1])]
    assert sel.counts["mirror_filtered"]["exclude_specs"] == 2


def test_only_specs_and_subdirs() -> None:
    recs = [rec("lua", "5.4"), rec("lua", "5.3"), rec("ncurses", "6"), rec("lua", "5.4", subdir="osx-64"),
            rec("zlib", "1")]
    sel = select(repo(*recs), compile_filters({"subdirs": ["linux-64"], "only_specs": ["lua >=5.4", "ncurses"]}))
    assert set(sel.kept) == {"linux-64"}
    assert set(sel.kept["linux-64"]) == {fn(recs[0]), fn(recs[2])}
    assert sel.counts["mirror_filtered"]["only_specs"] == 2


def test_dependency_closure() -> None:
    app = rec("app", "1.0", depends=["lib >=2", "__glibc >=2.17", "data"])
    lib1, lib2, lib3 = (rec("lib", v, depends=["zlib"]) for v in ("1.0", "2.0", "3.0"))
    zlib = rec("zlib", "1.3")
    data = rec("data", "1", subdir="noarch", depends=["python"])
    py = rec("python", "3.12")
    pyosx = rec("python", "3.12", subdir="osx-64")
    other = rec("unrelated", "1")
    up = repo(app, lib1, lib2, lib3, zlib, data, py, pyosx, other)
    sel = select(up, compile_filters({"only_specs": ["app"], "include_dependencies": True}))
    assert set(sel.kept["linux-64"]) == {fn(x) for x in (app, lib2, lib3, zlib, py)}
    assert set(sel.kept["noarch"]) == {fn(data)}
    # noarch deps may come from any subdir: python for osx-64 is in the closure of noarch `data`
    assert set(sel.kept["osx-64"]) == {fn(pyosx)}
    # closure stays inside the filtered upstream: an excluded license is never pulled in
    sel = select(up, compile_filters({"only_specs": ["app"], "include_dependencies": True},
                                     {"exclude_specs": ["zlib"]}))
    assert fn(zlib) not in sel.kept["linux-64"]


def test_channel_filters_normalize() -> None:
    assert normalize_channel_filters({"licenses": "-gpl3,mit", "exclude_specs": ["x"]}) == {
        "include_licenses": ["mit"], "exclude_licenses": ["gpl3"], "exclude_specs": ["x"]}
    assert normalize_channel_filters(None) == {}


def test_seconds_timestamps_are_understood() -> None:
    r = rec("old", "1")
    r["timestamp"] = r["timestamp"] // 1000
    sel = select(repo(r), compile_filters({"date_from": "2024-05-01", "date_to": "2024-07-01"}))
    assert sel.kept_count == 1
