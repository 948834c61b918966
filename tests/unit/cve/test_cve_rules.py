"""The pure CVE rules on the real sample records: scores, CPE and OSV parsing, version matching."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from taipan.domain import cve as rules
from taipan.domain import families
from taipan.errors import InvalidInput

DATA = Path(__file__).parents[2] / "data" / "cve"
CONDA_KEY = families.get("conda").version_key


def _nvd(name: str) -> dict[str, rules.CveRecord]:
    feed = json.loads(gzip.open(DATA / name).read())
    return {r.id: r for r in (rules.parse_nvd(v) for v in feed["vulnerabilities"])}


@pytest.fixture(scope="module")
def nvd() -> dict[str, rules.CveRecord]:
    return {**_nvd("nvd-2.0-sample.json.gz"), **_nvd("nvd-2.0-sample-trimmed.json.gz")}


@pytest.fixture(scope="module")
def osv() -> dict[str, rules.CveRecord]:
    return {r.source: r for r in map(rules.parse_osv, json.loads(gzip.open(DATA / "osv-pypi-sample.json.gz").read()))}


def test_scores_follow_the_nvd_rule(nvd):
    assert (nvd["CVE-2018-18074"].score, nvd["CVE-2018-18074"].score_type) == (7.5, "CVSS3")  # v3.1 over v2
    assert nvd["CVE-2018-18074"].cvss2["cvssV2"]["baseScore"] == 5.0
    assert (nvd["CVE-2015-2296"].score, nvd["CVE-2015-2296"].score_type) == (6.8, "CVSS2")  # v2 only
    assert nvd["CVE-2015-2296"].cvss3 is None
    missing = nvd["CVE-2023-31047"]  # "Awaiting Analysis": no metrics at all
    assert (missing.score, missing.cvss2, missing.cvss3) == (None, None, None)
    cna = nvd["CVE-2024-23334"]  # "Received": a CNA (Secondary) score only, no configurations
    assert (cna.score, cna.cvss3["type"], cna.affects) == (5.9, "Secondary", [])


def test_primary_beats_secondary_and_v4_is_kept():
    metric = {"cvssData": {"version": "3.1", "baseScore": 9.8}, "type": "Secondary", "source": "cna"}
    primary = {"cvssData": {"version": "3.0", "baseScore": 5.3}, "type": "Primary", "source": "nvd@nist.gov"}
    v4 = {"cvssData": {"version": "4.0", "baseScore": 8.7}, "type": "Secondary"}
    out = rules.nvd_scores({"cvssMetricV31": [metric], "cvssMetricV30": [primary], "cvssMetricV40": [v4]})
    assert (out["score"], out["cvss3"]["type"], out["cvss4"]["cvssV4"]["baseScore"]) == (5.3, "Primary", 8.7)


def test_descriptions_keep_their_newlines_and_english_wins(nvd):
    assert any("\n" in r.description for r in nvd.values())
    assert nvd["CVE-2015-2296"].description.startswith("The resolve_redirects function")


def test_os_cpes_are_ignored_and_products_are_keyed(nvd):
    keys = {a.key for r in nvd.values() for a in r.affects}
    assert "mageia_project:mageia" not in keys and not any(k.startswith("debian:") for k in keys)
    assert {"haxx:libcurl", "libexpat_project:libexpat", "palletsprojects:jinja", "zlib:zlib"} <= keys


def test_exact_versions_and_ranges(nvd):
    exact = [a for a in nvd["CVE-2015-2296"].affects if a.key == "python:requests"]
    assert {"exact": "2.2.1"} in [a.spec for a in exact]
    match = [a.spec for a in exact]
    assert any(rules.cpe_affected(s, "2.2.1", CONDA_KEY, None) for s in match)
    assert not any(rules.cpe_affected(s, "2.2.0", CONDA_KEY, None) for s in match)
    zlib = next(a.spec for a in nvd["CVE-2022-37434"].affects if a.key == "zlib:zlib")
    assert rules.cpe_affected(zlib, "1.2.12", CONDA_KEY, "linux")      # versionEndIncluding
    assert not rules.cpe_affected(zlib, "1.2.13", CONDA_KEY, "linux")


def test_letter_versions_order_as_conda_does(nvd):
    specs = [a.spec for a in nvd["CVE-2023-0286"].affects if a.key == "openssl:openssl"]
    hit = lambda v: any(rules.cpe_affected(s, v, CONDA_KEY, None) for s in specs)  # noqa: E731
    assert hit("1.1.1s") and hit("1.1.1") and hit("3.0.7") and hit("1.0.2zf")
    assert not hit("1.1.1t") and not hit("1.1.1u") and not hit("3.0.8") and not hit("1.0.1")


def test_an_and_node_with_a_platform_cpe(nvd):
    # CVE-2022-37434: the AND configuration's vulnerable CPE is firmware (an OS CPE), its platform a
    # non-vulnerable hardware CPE: neither becomes an affected package.
    assert [a.key for a in nvd["CVE-2022-37434"].affects] == ["zlib:zlib"]
    config = [{"operator": "AND", "nodes": [
        {"operator": "OR", "cpeMatch": [{"vulnerable": True, "criteria": "cpe:2.3:a:acme:widget:*:*:*:*:*:*:*:*",
                                          "versionEndExcluding": "2.0"}]},
        {"operator": "OR", "cpeMatch": [{"vulnerable": False,
                                          "criteria": "cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*"}]}]}]
    (affect,) = rules.nvd_affects(config)
    assert affect.spec["platforms"] == ["win"]
    assert rules.affected("cpe", affect.spec, "1.0", CONDA_KEY, "win-64")
    assert rules.affected("cpe", affect.spec, "1.0", CONDA_KEY, "noarch")  # not contradicted
    assert not rules.affected("cpe", affect.spec, "1.0", CONDA_KEY, "linux-64")  # contradicted


def test_osv_ranges_versions_and_aliases(osv):
    aio = osv["PYSEC-2024-24"]
    assert aio.id == "CVE-2024-23334" and "GHSA-5h86-8mv2-jq9f" in aio.aliases and "PYSEC-2024-24" in aio.aliases
    assert aio.modified.year == 2024  # "2024-02-05 20:20:47.716944+00:00": a space, not a T
    (affect,) = aio.affects
    assert (affect.ecosystem, affect.key) == ("PyPI", "aiohttp")
    assert rules.osv_affected(affect.spec, "3.9.1", CONDA_KEY)
    assert not rules.osv_affected(affect.spec, "3.9.2", CONDA_KEY)       # fixed
    assert not rules.osv_affected(affect.spec, "1.0.4", CONDA_KEY)       # before introduced
    assert rules.osv_affected(affect.spec, "2.3.0a1", CONDA_KEY)         # in the versions list
    spec = {"ranges": [[{"introduced": "0"}, {"last_affected": "1.4"}]], "versions": []}
    assert rules.osv_affected(spec, "1.4", CONDA_KEY) and not rules.osv_affected(spec, "1.4.1", CONDA_KEY)
    assert all(a.spec["ranges"] for r in osv.values() for a in r.affects)  # GIT ranges dropped, ECOSYSTEM kept


def test_file_summary():
    assert rules.file_summary([]) == (None, None)
    assert rules.file_summary([(7.5, "cleared"), (5.0, "active")]) == (5.0, "active")
    assert rules.file_summary([(9.8, "disputed")]) == (None, "disputed")
    assert rules.file_summary([(4.0, "mitigated"), (None, "reported")]) == (4.0, "reported")


@pytest.mark.parametrize("bad", [None, {}, {"cve": {"id": 5}}, {"cve": {"id": "CVE-1", "lastModified": "yesterday"}}])
def test_malformed_nvd_records_are_refused(bad):
    with pytest.raises(InvalidInput):
        rules.parse_nvd(bad)


def test_malformed_osv_is_refused():
    with pytest.raises(InvalidInput):
        rules.parse_osv({"id": "X-1"})  # no modified date
    with pytest.raises(InvalidInput):
        rules.parse_osv([1])
