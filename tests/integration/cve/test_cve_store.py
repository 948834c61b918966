"""The CVE store against a real database: import (NVD, OSV; plain, .gz, directories, zips), idempotent
re-import, nothing kept from a malformed import, matching files, curation and the CPE mapping."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from taipan.db.cves import Cve, CveAffect, CveFile, CveHistory
from taipan.db.models import Channel, File
from taipan.domain.permissions import Principal
from taipan.errors import Forbidden, InvalidInput
from taipan.services import cve_import, cve_matching, cves

DATA = Path(__file__).parents[2] / "data" / "cve"
ADMIN = Principal(user_id="a", username="root", role="admin", scopes=frozenset({"*"}), kind="session")
USER = Principal(user_id="u", username="joe", role="user", scopes=frozenset({"*"}), kind="session")

# (name, version, subdir) -> the CVEs it must match
EXPECTED = {
    ("libcurl", "8.3.0", "linux-64"): {"CVE-2023-38545", "CVE-2023-38546"},
    ("curl", "8.4.0", "linux-64"): set(),                                 # fixed (versionEndExcluding)
    ("expat", "2.4.8", "linux-64"): {"CVE-2022-40674"},                   # libexpat_project:libexpat
    ("jinja2", "2.10", "noarch"): {"CVE-2019-10906", "CVE-2024-22195"},   # palletsprojects:jinja + OSV
    ("openssl", "1.1.1s", "linux-64"): {"CVE-2023-0286"},                 # letter versions
    ("openssl", "1.1.1t", "linux-64"): set(),
    ("openssl", "3.0.6", "osx-arm64"): {"CVE-2023-0286", "CVE-2022-3602"},
    ("zlib", "1.2.12", "win-64"): {"CVE-2022-37434"},                     # versionEndIncluding
    ("zlib", "1.2.13", "win-64"): set(),
    ("requests", "2.2.1", "noarch"): {"CVE-2015-2296", "CVE-2018-18074"},  # exact version CPE
    ("requests", "2.0.0", "noarch"): {"CVE-2018-18074"},
    ("tensorflow-base", "2.5.0", "linux-64"): {"CVE-2021-37641"},         # google:tensorflow mapping
    ("aiohttp", "3.9.1", "linux-64"): {"CVE-2024-23334"},                 # OSV PyPI name, CNA score only
    ("django", "4.1.8", "noarch"): {"CVE-2023-31047"},                    # OSV only, no NVD metrics
    ("debian_linux", "10.0", "linux-64"): set(),                          # an OS CPE is no package
    ("mageia", "4.0", "linux-64"): set(),
}


def add_files(db, channel_path: str = "cvechan", specs=EXPECTED) -> dict[tuple[str, str, str], str]:
    channel = db.scalar(select(Channel).where(Channel.path == channel_path))
    if channel is None:
        channel = Channel(name=channel_path.split("/")[-1], path=channel_path)
        db.add(channel)
        db.flush()
    ids = {}
    for name, version, subdir in specs:
        fn = f"{name}-{version}-0.conda"
        digest = hashlib.sha256(f"{channel_path}{subdir}{fn}".encode()).hexdigest()
        f = File(channel_id=channel.id, family="conda", name=name, version=version, subdir=subdir, filename=fn,
                 ckey=f"{subdir}/{fn}", sha256=digest, md5=digest[:32], size=1,
                 record=json.dumps({"name": name, "version": version, "build": "0", "build_number": 0}))
        db.add(f)
        db.flush()
        ids[(name, version, subdir)] = f.id
    return ids


def matched(db, file_id: str) -> set[str]:
    return set(db.scalars(select(CveFile.cve_id).where(CveFile.file_id == file_id)))


def test_import_match_and_reimport(runtime, tmp_path):
    with runtime.sessions() as db:
        ids = add_files(db)
        result = cve_import.import_paths(db, [DATA])  # a directory of .gz files: NVD feeds and an OSV list
        db.commit()
        assert result["records"] == 24 and result["added"] == 17
        assert db.scalar(select(func.count()).select_from(Cve)) == 17
        for key, expected in EXPECTED.items():
            assert matched(db, ids[key]) == expected, key
        f = db.get(File, ids[("openssl", "3.0.6", "osx-arm64")])
        assert (f.cve_score, f.cve_status) == (7.5, "reported")
        assert db.get(File, ids[("django", "4.1.8", "noarch")]).cve_score is None  # no score, still a CVE
        assert db.get(File, ids[("django", "4.1.8", "noarch")]).cve_status == "reported"
        assert db.get(File, ids[("zlib", "1.2.13", "win-64")]).cve_status is None
        merged = db.get(Cve, "CVE-2015-2296")
        assert set(merged.sources) == {"nvd", "PYSEC-2015-17"} and merged.score == 6.8
        # The same data again changes nothing; an older copy of a record neither.
        again = cve_import.import_paths(db, [DATA])
        db.commit()
        assert (again["added"], again["updated"], again["unchanged"]) == (0, 0, 24)
    # A newer lastModified replaces that source's data, and only that.
    feed = json.loads(gzip.open(DATA / "nvd-2.0-sample-trimmed.json.gz").read())
    rec = next(v for v in feed["vulnerabilities"] if v["cve"]["id"] == "CVE-2023-0286")
    rec["cve"]["lastModified"] = "2030-01-01T00:00:00.000"
    for cfg in rec["cve"]["configurations"]:
        for node in cfg["nodes"]:
            for m in node["cpeMatch"]:
                if m.get("versionEndExcluding") == "1.1.1t":
                    m["versionEndExcluding"] = "1.1.1u"
    feed["vulnerabilities"] = [rec]
    (tmp_path / "newer.json").write_text(json.dumps(feed))
    with runtime.sessions() as db:
        result = cve_import.import_paths(db, [tmp_path / "newer.json"])
        db.commit()
        assert (result["updated"], result["unchanged"]) == (1, 0)
        assert matched(db, ids[("openssl", "1.1.1t", "linux-64")]) == {"CVE-2023-0286"}
        assert db.get(File, ids[("openssl", "1.1.1t", "linux-64")]).cve_score == 7.4


def _count(db) -> tuple[int, int, int]:
    return (db.scalar(select(func.count()).select_from(Cve)), db.scalar(select(func.count()).select_from(CveAffect)),
            db.scalar(select(func.count()).select_from(CveFile)))


@pytest.mark.parametrize("bad", [
    b'{"vulnerabilities": [{"cve": {"id": "CVE-2099-0001", "lastModified": "2024-01-01T00:00:00"}}, {"cve": {',
    b'{"vulnerabilities": [{"cve": {"id": "CVE-2099-0001", "lastModified": "2024-01-01T00:00:00"}}, {"x": 1}]}',
    b'[{"id": "PYSEC-1", "modified": "2024-01-01T00:00:00Z"}, {"id": "PYSEC-2", "modified": "last week"}]',
    b'"just a string"',
    b"\x00\x01 not json",
])
def test_a_malformed_file_imports_nothing(runtime, tmp_path, bad):
    good = tmp_path / "in" / "a-good.json.gz"
    good.parent.mkdir()
    shutil.copy(DATA / "nvd-2.0-sample.json.gz", good)
    (tmp_path / "in" / "b-bad.json").write_bytes(bad)
    with runtime.sessions() as db:
        add_files(db)
        db.commit()
        before = _count(db)
        with pytest.raises(InvalidInput) as err:
            cve_import.import_paths(db, [tmp_path / "in"])
        db.rollback()
        assert "b-bad.json" in err.value.message and "nothing was imported" in err.value.hint
        assert _count(db) == before == (0, 0, 0)


def test_a_truncated_gzip_imports_nothing(runtime, tmp_path):
    data = (DATA / "nvd-2.0-sample.json.gz").read_bytes()
    (tmp_path / "cut.json.gz").write_bytes(data[: len(data) // 2])
    with runtime.sessions() as db:
        with pytest.raises(InvalidInput):
            cve_import.import_paths(db, [tmp_path / "cut.json.gz"])
        db.rollback()
        assert _count(db) == (0, 0, 0)


def test_osv_single_advisory_and_zip(runtime, tmp_path):
    advisories = json.loads(gzip.open(DATA / "osv-pypi-sample.json.gz").read())
    (tmp_path / "one.json").write_text(json.dumps(advisories[0]))
    with zipfile.ZipFile(tmp_path / "PyPI.zip", "w") as zf:
        for adv in advisories[1:]:
            zf.writestr(f"{adv['id']}.json", json.dumps(adv))
    # An advisory without a CVE alias is filed under its own id.
    own = {"id": "PYSEC-2099-1", "modified": "2024-01-01T00:00:00Z", "details": "x",
           "affected": [{"package": {"ecosystem": "PyPI", "name": "Typing_Extensions"},
                         "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "4.0"}]}]}]}
    (tmp_path / "own.json").write_text(json.dumps(own))
    with runtime.sessions() as db:
        ids = add_files(db, specs=[("typing-extensions", "3.10.0", "noarch"), ("aiohttp", "3.8.0", "noarch")])
        result = cve_import.import_paths(db, [tmp_path / "one.json", tmp_path / "PyPI.zip", tmp_path / "own.json"])
        db.commit()
        assert result["records"] == 8
        assert db.get(Cve, "CVE-2024-23334").description.startswith("aiohttp is")
        assert matched(db, ids[("typing-extensions", "3.10.0", "noarch")]) == {"PYSEC-2099-1"}
        assert matched(db, ids[("aiohttp", "3.8.0", "noarch")]) == {"CVE-2024-23334"}


def test_curation_round_trip_and_rights(runtime):
    with runtime.sessions() as db:
        ids = add_files(db)
        cve_import.import_paths(db, [DATA])
        fid = ids[("openssl", "1.1.1s", "linux-64")]
        with pytest.raises(Forbidden):
            cves.curate(db, USER, "CVE-2023-0286", "cleared")
        with pytest.raises(InvalidInput):
            cves.curate(db, ADMIN, "CVE-2023-0286", "fixed")
        cves.curate(db, ADMIN, "CVE-2023-0286", "cleared", "not in our builds")
        db.commit()
        assert (db.get(File, fid).cve_score, db.get(File, fid).cve_status) == (None, "cleared")
        cves.curate(db, ADMIN, "CVE-2023-0286", "mitigated", "patched")
        db.commit()
        assert (db.get(File, fid).cve_score, db.get(File, fid).cve_status) == (7.4, "mitigated")
        history = list(db.scalars(select(CveHistory).where(CveHistory.cve_id == "CVE-2023-0286")
                                  .order_by(CveHistory.id)))
        assert [(h.old_status, h.new_status, h.username, h.note) for h in history] == [
            ("reported", "cleared", "root", "not in our builds"), ("cleared", "mitigated", "root", "patched")]
        shown = cves.show_cve(db, ADMIN, "CVE-2023-0286")
        assert shown["curated"] and shown["cvssv3"]["cvssV3"]["baseScore"] == 7.4
        assert {(p["name"], p["version"]) for p in shown["packages"]} >= {("openssl", "1.1.1s")}
        total, items = cves.list_cves(db, ADMIN, offset=0, limit=5, status="curated")
        assert total == 1 and items[0]["id"] == "CVE-2023-0286"
        total, items = cves.list_cves(db, ADMIN, offset=0, limit=3, min_score=9.0, sort="-score")
        assert total == 3 and all(i["score"] >= 9.0 for i in items)
        total, _ = cves.list_cves(db, ADMIN, offset=0, limit=3, package="libcurl")
        assert total == 2


def test_mapping_edits_rematch(runtime):
    with runtime.sessions() as db:
        ids = add_files(db, specs=[("zlib", "1.2.11", "linux-64"), ("myzlib", "1.2.11", "linux-64")])
        cve_import.import_paths(db, [DATA])
        assert matched(db, ids[("myzlib", "1.2.11", "linux-64")]) == set()
        with pytest.raises(Forbidden):
            cves.set_mapping(db, USER, "zlib:zlib", ["myzlib"])
        cves.set_mapping(db, ADMIN, "zlib:zlib", ["myzlib"])
        db.commit()
        assert matched(db, ids[("myzlib", "1.2.11", "linux-64")]) == {"CVE-2022-37434"}
        assert matched(db, ids[("zlib", "1.2.11", "linux-64")]) == set()
        assert db.get(File, ids[("zlib", "1.2.11", "linux-64")]).cve_score is None
        listed = {m["product"]: m for m in cves.list_mappings(db, USER, "zlib")}
        assert listed["zlib:zlib"]["source"] == "admin" and listed["zlib:zlib"]["shipped"] == ["zlib", "libzlib"]
        cves.delete_mapping(db, ADMIN, "zlib:zlib")
        db.commit()
        assert matched(db, ids[("zlib", "1.2.11", "linux-64")]) == {"CVE-2022-37434"}
        assert matched(db, ids[("myzlib", "1.2.11", "linux-64")]) == set()
        # A full rematch gives the same answer as the incremental ones.
        assert cve_matching.match_files(db, None)["files_with_cves"] == 1


def test_hooks_for_sboms_and_reports(runtime):
    from taipan.services import cve_hooks

    with runtime.sessions() as db:
        ids = add_files(db)
        cve_import.import_paths(db, [DATA])
        cves.curate(db, ADMIN, "CVE-2022-3602", "cleared")
        fid = ids[("openssl", "3.0.6", "osx-arm64")]
        vulns = cve_hooks.vulnerabilities_for(db, db.get(File, fid))
        assert [(v.id, v.score, v.method, v.severity) for v in vulns] == [
            ("CVE-2022-3602", 7.5, "CVSSv31", "high"), ("CVE-2023-0286", 7.4, "CVSSv31", "high")]
        assert vulns[0].status == "cleared" and vulns[0].vector.startswith("CVSS:3.1/")
        summaries = cve_hooks.cve_summaries(db, [fid, ids[("zlib", "1.2.13", "win-64")]])
        assert summaries == {fid: cve_hooks.CveSummary(("CVE-2022-3602", "CVE-2023-0286"), 7.4)}


def test_python_and_cran_files_compare_in_their_own_order(runtime, tmp_path):
    """Python files by PEP 440 (2.0rc1 is before 2.0), R files by numeric_version (1.2-10 after 1.2-9),
    both through the family registry; conda files of the same name see the OSV PyPI advisory too."""
    advisories = [
        {"id": "PYSEC-2099-2", "modified": "2024-01-01T00:00:00Z", "aliases": ["CVE-2099-2000"],
         "affected": [{"package": {"ecosystem": "PyPI", "name": "Some_Lib"},
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}, {"fixed": "2.0"}]}]}]},
        {"id": "RSEC-2099-1", "modified": "2024-01-01T00:00:00Z",
         "affected": [{"package": {"ecosystem": "CRAN", "name": "somepkg"},
                       "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "1.2-10"}]}]}]},
    ]
    (tmp_path / "osv.json").write_text(json.dumps(advisories))
    with runtime.sessions() as db:
        channel = Channel(name="mixed", path="mixed")
        db.add(channel)
        db.flush()
        rows = {}
        for family, name, version, subdir in [("python", "some-lib", "2.0rc1", "simple"),
                                              ("python", "some-lib", "2.0", "simple"),
                                              ("conda", "some_lib", "1.5", "noarch"),
                                              ("cran", "somepkg", "1.2-9", "src/contrib"),
                                              ("cran", "somepkg", "1.2-10", "src/contrib"),
                                              ("cran", "SomePkg", "1.0", "src/contrib")]:
            fn = f"{name}-{version}.x"
            f = File(channel_id=channel.id, family=family, name=name, version=version, subdir=subdir, filename=fn,
                     ckey=f"{subdir}/{fn}", sha256="0" * 64, md5="0" * 32, size=1, record="{}")
            db.add(f)
            db.flush()
            rows[(family, version)] = f.id
        cve_import.import_paths(db, [tmp_path / "osv.json"])
        db.commit()
        assert matched(db, rows[("python", "2.0rc1")]) == {"CVE-2099-2000"}
        assert matched(db, rows[("python", "2.0")]) == set()
        assert matched(db, rows[("conda", "1.5")]) == {"CVE-2099-2000"}
        assert matched(db, rows[("cran", "1.2-9")]) == {"RSEC-2099-1"}
        assert matched(db, rows[("cran", "1.2-10")]) == set()
        assert matched(db, rows[("cran", "1.0")]) == set()  # CRAN names are case-sensitive
