"""Channel CVE filters kept true as CVE data changes: withheld from the index (not deleted), a history
event, and back when curation clears the CVE; uploads and copies refused by channel filters."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select
from test_cve_store import ADMIN, add_files

from taipan.db.models import Channel, ChannelEvent, File, IndexChange
from taipan.domain import filters as flt
from taipan.domain.permissions import Principal
from taipan.errors import InvalidInput
from taipan.services import channels, cve_enforcement, cve_import, cves, indexing

DATA = Path(__file__).parents[2] / "data" / "cve"
OWNER = Principal(user_id="a", username="root", role="admin", scopes=frozenset({"*"}), kind="session")


def events(db, channel_id: str, kind: str) -> list[ChannelEvent]:
    return list(db.scalars(select(ChannelEvent).where(ChannelEvent.channel_id == channel_id,
                                                      ChannelEvent.event_type == kind).order_by(ChannelEvent.id)))


def test_withheld_then_restored(runtime):
    with runtime.sessions() as db:
        ids = add_files(db, "guarded", [("openssl", "1.1.1s", "linux-64"), ("zlib", "1.2.13", "win-64"),
                                        ("django", "4.1.8", "noarch")])
        channel = db.scalar(select(Channel).where(Channel.path == "guarded"))
        channel.filters = {"cve_score_threshold": 7.0}
        db.commit()
        before = db.scalar(select(func.count()).select_from(IndexChange))
        cve_import.import_paths(db, [DATA])
        db.commit()
        openssl = db.get(File, ids[("openssl", "1.1.1s", "linux-64")])
        assert openssl.withheld and openssl.cve_score == 7.4
        assert not db.get(File, ids[("django", "4.1.8", "noarch")]).withheld   # no score: under any threshold
        assert not db.get(File, ids[("zlib", "1.2.13", "win-64")]).withheld
        (ev,) = events(db, channel.id, "artifacts_withheld")
        assert ev.data["files"] == [{"ckey": "linux-64/openssl-1.1.1s-0.conda", "cve_score": 7.4,
                                     "cve_status": "reported"}]
        assert db.scalar(select(func.count()).select_from(IndexChange)) > before  # the index hears of it
        # Curation clears it: the file comes back.
        cves.curate(db, ADMIN, "CVE-2023-0286", "cleared", "not affected")
        db.commit()
        assert not db.get(File, openssl.id).withheld
        assert len(events(db, channel.id, "artifacts_restored")) == 1
        # Stricter filters set on the channel apply at once: uncurated CVEs are out.
        channels.update_channel(db, OWNER, channel, {"filters": {"exclude_non_curated_cve": True}})
        db.commit()
        assert db.get(File, ids[("django", "4.1.8", "noarch")]).withheld          # CVE-2023-31047 is reported
        assert not db.get(File, openssl.id).withheld                             # its CVE is curated now
        channels.update_channel(db, OWNER, channel, {"filters": {}})
        db.commit()
        assert not db.get(File, ids[("django", "4.1.8", "noarch")]).withheld
        assert db.scalar(select(func.count()).select_from(File).where(File.channel_id == channel.id)) == 3


def rec(name: str, version: str, **more: str) -> dict[str, str]:
    return {"name": name, "version": version, "build": "0", **more}


def test_channel_filters_refuse_uploads_and_copies(runtime):
    with runtime.sessions() as db:
        add_files(db, "plain", [("openssl", "1.1.1s", "linux-64")])
        cve_import.import_paths(db, [DATA])
        strict = Channel(name="strict", path="strict", filters={"cve_score_threshold": "7", "exclude_specs":
                                                                 ["zlib <1.3"], "licenses": "-gpl3"})
        db.add(strict)
        db.flush()
        with pytest.raises(InvalidInput) as err:
            cve_enforcement.check_channel_filters(db, strict, "conda", rec("openssl", "1.1.1s"),
                                                  "linux-64")
        assert err.value.code == "blocked_by_channel_filter" and "CVE score 7.4" in err.value.message
        with pytest.raises(InvalidInput) as err:
            cve_enforcement.check_channel_filters(db, strict, "conda", rec("zlib", "1.2.13"), "noarch")
        assert "exclude specs" in err.value.message
        with pytest.raises(InvalidInput) as err:
            cve_enforcement.check_channel_filters(db, strict, "conda", rec("x", "1", license="GPL-3.0-only"), "noarch")
        assert "license" in err.value.message
        cve_enforcement.check_channel_filters(db, strict, "conda", rec("openssl", "1.1.1t"),
                                              "linux-64")
        from taipan.services import artifacts

        plain = db.scalar(select(Channel).where(Channel.path == "plain"))
        with pytest.raises(InvalidInput):
            artifacts.bulk(db, OWNER, plain, "copy", [{"name": "openssl", "family": "conda"}], "strict", None)


def test_mirror_selection_counts_cve_filters_per_level():
    records = {"linux-64": {"a-1.conda": {"name": "a", "version": "1"}, "b-1.conda": {"name": "b", "version": "1"},
                            "c-1.conda": {"name": "c", "version": "1"}}}
    known = {"a": (9.8, "active"), "b": (5.0, "reported"), "c": (None, None)}
    cve_of = lambda subdir, rec: known[rec["name"]]  # noqa: E731
    sel = flt.select(records, flt.compile_filters({"cve_score_threshold": 9.0}, {"exclude_non_curated_cve": True}),
                     cve_of)
    assert set(sel.kept["linux-64"]) == {"c-1.conda"}
    assert sel.counts["channel_filtered"]["cve"] == 1 and sel.counts["mirror_filtered"]["cve"] == 1
    sel = flt.select(records, flt.compile_filters({"cve_score_threshold": 9.9}, {}), cve_of)
    assert len(sel.kept["linux-64"]) == 3
    with pytest.raises(InvalidInput):
        flt.normalize_channel_filters({"cve_score_threshold": 11})
    with pytest.raises(InvalidInput):
        flt.normalize_channel_filters({"exclude_non_curated_cve": "maybe"})
    assert flt.normalize_channel_filters({"exclude_non_curated_cve": "False"}) == {}


def test_a_bounded_assessor_answers_like_one_that_loads_every_name(runtime):
    """A mirror run asks the CVE store by batches of names, through a cache of a few keys: the answers
    are those of one load of every name, also when the cache is emptied between records."""
    with runtime.sessions() as db:
        cve_import.import_paths(db, [DATA])
        db.commit()
    versions = {"openssl": ["1.1.1s", "1.1.1t", "3.0.5", "3.0.8"], "libcurl": ["7.8", "8.3.0", "8.4.0"],
                "django": ["4.1.8", "4.2.3"], "requests": ["2.2.1", "2.19.0", "2.31.0"], "zlib": ["1.2.13"],
                "sqlite": ["3.39.1", "3.40.0"], "numpy": ["1.26.4"]}
    records = [("linux-64", {"name": n, "version": v}) for n, vs in versions.items() for v in vs]
    with runtime.sessions() as db:
        every = cve_enforcement.assessor(db, "conda", set(versions))
        want = [every(sd, r) for sd, r in records]
    assert {w for w in want if w != (None, None)} and (None, None) in want
    bounded = cve_enforcement.Assessor(runtime.sessions, "conda", limit=2)
    assert [bounded(sd, r) for sd, r in records] == want  # one name at a time, the cache emptied often
    assert len(bounded.loaded) <= 2
    assert [bounded(sd, r) for sd, r in reversed(records)] == want[::-1]
    batched = cve_enforcement.Assessor(runtime.sessions, "conda", limit=3)
    batched.prime(["openssl", "libcurl", "django"])
    assert [batched(sd, r) for sd, r in records] == want


def test_withheld_files_are_not_found_for_serving(runtime):
    """What package serving asks the database leaves withheld files out: the file itself (a 404 like a
    missing file) and, for R, the versions that tell src/contrib's newest from Archive's."""
    from taipan.errors import NotFound
    from taipan.services import serving

    with runtime.sessions() as db:
        channel = Channel(name="rguard", path="rguard")
        db.add(channel)
        db.flush()
        for version in ("0.9", "1.0"):
            fn = f"tpmain_{version}.tar.gz"
            db.add(File(channel_id=channel.id, family="cran", name="tpmain", version=version, subdir="src/contrib",
                        filename=fn, ckey=f"src/contrib/{fn}", sha256=version.replace(".", "") * 32, md5="0" * 32,
                        size=1, record="{}", withheld=version == "1.0"))
        db.commit()
        channel_id = channel.id
    assert serving.versions_in(runtime.sessions, channel_id, "cran", "src/contrib", "tpmain") == ["0.9"]
    assert serving.find_file(runtime.sessions, channel_id, "src/contrib/tpmain_0.9.tar.gz").version == "0.9"
    with pytest.raises(NotFound) as missing:
        serving.find_file(runtime.sessions, channel_id, "src/contrib/tpmain_1.0.tar.gz")
    assert missing.value.code == "file_not_found"


def _listed(rt, channel_id: str, subdir: str) -> dict[str, dict]:
    rt.indexer.notify(channel_id, {subdir})
    data = json.loads(rt.indexer.publication(channel_id, subdir).file("repodata.json"))
    return {**data["packages"], **data["packages.conda"]}


def test_a_replacement_waiting_in_a_frozen_channel_meets_its_cve_filters_at_the_unfreeze(runtime):
    """A mirror's replacement held while the channel is frozen (``indexing.defer``) is written at the
    unfreeze: if by then it breaks the channel's CVE filters it is withheld, as an upload or a mirror
    run's file would be, and never published. One replacement's record names another version than the
    row it replaces (an upstream's patched record; the row's score was that of the old version): it
    breaks the filter only once written. The other's file is hit by CVE data imported while frozen:
    the frozen row is withheld at once, and its replacement stays withheld."""
    rt = runtime
    with rt.sessions() as db:
        ids = add_files(db, "icebox", [("openssl", "1.1.1t", "linux-64"), ("openssl", "1.1.1s", "linux-64"),
                                       ("zlib", "1.2.13", "linux-64")])
        channel = db.scalar(select(Channel).where(Channel.path == "icebox"))
        channels.update_channel(db, OWNER, channel, {"filters": {"cve_score_threshold": 7.0}, "frozen": True})
        db.commit()
        cid = channel.id
    fn_t, fn_s, fn_z = "openssl-1.1.1t-0.conda", "openssl-1.1.1s-0.conda", "zlib-1.2.13-0.conda"
    assert set(_listed(rt, cid, "linux-64")) == {fn_t, fn_s, fn_z}

    def replacement(key: tuple[str, str, str], fn: str, version: str) -> dict:
        sha = hashlib.sha256(f"new {fn}".encode()).hexdigest()
        return {"id": ids[key], "subdir": "linux-64", "filename": fn, "family": "conda", "name": key[0],
                "version": version, "sha256": sha, "md5": sha[:32], "size": 2, "state": "active",
                "record": json.dumps({"name": key[0], "version": version, "build": "0", "build_number": 1,
                                      "sha256": sha, "size": 2}), "channel_id": cid}

    with rt.sessions() as db:
        indexing.lock_channel(db, cid)
        assert indexing.defer(db, cid, [
            replacement(("openssl", "1.1.1t", "linux-64"), fn_t, "1.1.1s"),   # breaks the filter once written
            replacement(("openssl", "1.1.1s", "linux-64"), fn_s, "1.1.1s"),   # hit by the import below
            replacement(("zlib", "1.2.13", "linux-64"), fn_z, "1.2.13")]) == []
        db.commit()
        cve_import.import_paths(db, [DATA])  # CVE-2023-0286 (7.4) affects openssl 1.1.1s
        db.commit()
        assert db.get(File, ids[("openssl", "1.1.1s", "linux-64")]).withheld
        assert not db.get(File, ids[("openssl", "1.1.1t", "linux-64")]).withheld
    assert set(_listed(rt, cid, "linux-64")) == {fn_t, fn_z}  # still frozen: 1.1.1s withheld at once

    with rt.sessions() as db:
        channels.update_channel(db, OWNER, db.get(Channel, cid), {"frozen": False})
        db.commit()
        rows = {f.filename: f for f in db.scalars(select(File).where(File.channel_id == cid))}
        assert (rows[fn_t].version, rows[fn_t].cve_score, rows[fn_t].withheld) == ("1.1.1s", 7.4, True)
        assert (rows[fn_s].cve_score, rows[fn_s].withheld) == (7.4, True)
        assert (json.loads(rows[fn_z].record)["build_number"], rows[fn_z].withheld) == (1, False)
        withheld = [f["ckey"] for ev in events(db, cid, "artifacts_withheld") for f in ev.data["files"]]
        assert sorted(withheld) == [f"linux-64/{fn_s}", f"linux-64/{fn_t}"]
    listed = _listed(rt, cid, "linux-64")
    assert list(listed) == [fn_z] and listed[fn_z]["build_number"] == 1


def test_an_upload_enforces_the_cve_filters_on_its_own_file_only(runtime, package_builder):
    """After an upload's CVE match, the channel's CVE filters are checked on the files whose score
    changed, by their ids, not on every file of the channel (a read of the whole channel per upload
    in a channel with CVE filters): every query that applies the filter rule is answered from the
    primary key (or, for withheld files to bring back, from the index of the few withheld files)."""
    from sqlalchemy import event

    from taipan.services import uploads

    rt = runtime
    with rt.sessions() as db:
        cve_import.import_paths(db, [DATA])
        add_files(db, "big", [(f"pkg{i}", "1.0", "noarch") for i in range(50)])
        channel = db.scalar(select(Channel).where(Channel.path == "big"))
        channels.update_channel(db, OWNER, channel, {"filters": {"cve_score_threshold": 9.0}})
        db.commit()
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "cve_score >=" in statement:
            seen.append((statement, parameters))

    pkg = package_builder("openssl", "1.1.1s", "linux-64")  # scores 7.4: under the channel's 9.0
    event.listen(rt.engine, "before_cursor_execute", record)
    try:
        with rt.sessions() as db, open(pkg, "rb") as fh:
            spooled = uploads.spool(fh, rt.blobs.tempdir(), 10**9)
            try:
                row = uploads.upload(db, rt.blobs, OWNER, channels.get_channel(db, "big"), spooled, pkg.name)
                db.commit()
            finally:
                spooled.discard()
            db.refresh(row)
            assert (row.cve_score, row.withheld) == (7.4, False)
    finally:
        event.remove(rt.engine, "before_cursor_execute", record)
    assert seen, "the upload's file has a score: the filters are checked"
    with rt.engine.connect() as conn:
        for statement, parameters in seen:
            if conn.dialect.name == "sqlite":
                plan = " ".join(str(r) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
                assert "(id=?)" in plan or "ix_files_withheld_channel" in plan, (statement, plan)
            else:  # small tables: with their statistics and a table scan switched off, the index it would use
                conn.exec_driver_sql("ANALYZE files")
                conn.exec_driver_sql("SET enable_seqscan = off")
                plan = " ".join(str(r) for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
                assert "Index Scan using pk_files" in plan or "ix_files_withheld_channel" in plan, (statement, plan)
