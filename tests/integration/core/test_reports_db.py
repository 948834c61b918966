"""The download report and the UI's download statistics on SQLite and PostgreSQL: the streamed rows,
the date bounds (UTC days, inclusive), the user and channel filters, and who may ask."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from taipan.db.engine import make_engine, make_sessionmaker
from taipan.db.migrate import upgrade
from taipan.db.models import Channel, Download, User
from taipan.domain.permissions import Principal
from taipan.errors import Forbidden, InvalidInput
from taipan.services import reports

ADMIN = Principal(user_id="a", username="admin", role="admin", scopes=frozenset({"*"}), kind="session")


def test_report_rows_filters_and_stats(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as db, db.begin():
            owner = User(username="olga", password_hash="x")
            db.add(owner)
            db.flush()
            top = Channel(name="top", path="top")
            db.add(top)
            db.flush()
            sub = Channel(name="sub", path="top/sub", parent_id=top.id)
            other = Channel(name="other", path="other")
            db.add_all([sub, other])
            db.flush()
            top.owners.append(owner)
            rows = [(datetime(2024, 6, 1, 0, 0, tzinfo=UTC), top, "olga", "noarch/a-1-0.conda"),
                    (datetime(2024, 6, 1, 23, 59, 59, tzinfo=UTC), sub, None, "linux-64/b-2-0.tar.bz2"),
                    (datetime(2024, 6, 2, 0, 0, tzinfo=UTC), other, "bob", "noarch/c-1-0.conda"),
                    (datetime(2024, 5, 31, 23, 59, 59, tzinfo=UTC), top, "olga", "noarch/a-1-0.conda")]
            for at, ch, user, ckey in rows:
                db.add(Download(at=at, channel_id=ch.id, channel_path=ch.path, ckey=ckey, package=ckey.split("/")[1][0],
                                version="1", username=user, size=10, cve_ids="CVE-1 CVE-2", cve_score=7.5))
            owner_id = owner.id
        with sessions() as db:
            q = reports.parse(db, ADMIN, {"from_date": "2024-06-01", "to_date": "2024-06-01", "download_as": "json"})
        doc = json.loads(b"".join(reports.stream(sessions, q)))
        items = doc["downloaded_items"]
        assert [(i["channel"], i["username"], i["downloaded_at"]) for i in items] == [
            ("top", "olga", "2024-06-01T00:00:00.000000Z"), ("top/sub", "anonymous", "2024-06-01T23:59:59.000000Z")] \
            or [(i["channel"], i["username"], i["downloaded_at"]) for i in items] == [
            ("top", "olga", "2024-06-01T00:00:00Z"), ("top/sub", "anonymous", "2024-06-01T23:59:59Z")]
        assert items[0]["cve_ids"] == ["CVE-1", "CVE-2"] and items[0]["cve_max_score"] == 7.5
        assert items[1]["platform"] == "linux-64" and items[1]["filename"] == "b-2-0.tar.bz2" and doc["count"] == 2
        with sessions() as db:
            q = reports.parse(db, ADMIN, {"from_date": "2024-05-01", "to_date": "2024-06-30", "download_as": "csv",
                                          "user_names": ["anonymous", "bob"]})
        table = list(csv.DictReader(io.StringIO(b"".join(reports.stream(sessions, q)).decode())))
        assert [(r["channel"], r["username"]) for r in table] == [("top/sub", "anonymous"), ("other", "bob")]
        owner_p = Principal(user_id=owner_id, username="olga", role="user", scopes=frozenset({"*"}), kind="session")
        with sessions() as db:
            q = reports.parse(db, owner_p, {"from_date": "2024-05-01", "to_date": "2024-06-30"})
            assert len(json.loads(b"".join(reports.stream(sessions, q)))["downloaded_items"]) == 3
            with pytest.raises(Forbidden):
                reports.parse(db, owner_p, {"from_date": "2024-05-01", "to_date": "2024-06-01",
                                            "channel_names": ["other"]})
            with pytest.raises(InvalidInput, match="longer than one year"):
                reports.parse(db, ADMIN, {"from_date": "2024-02-29", "to_date": "2025-03-02"})
            reports.parse(db, ADMIN, {"from_date": "2024-02-29", "to_date": "2025-03-01"})
            for bad in ({}, [], False, 0):  # found by schemathesis: these once meant "json"
                with pytest.raises(InvalidInput, match="download_as"):
                    reports.parse(db, ADMIN, {"from_date": "2024-06-01", "to_date": "2024-06-02", "download_as": bad})
            top_row = db.scalar(select(Channel).where(Channel.path == "top"))
            assert top_row is not None
            stats = reports.download_stats(db, top_row, today=date(2024, 6, 2))
        assert dict(stats["days"])["2024-06-01"] == 2 and dict(stats["days"])["2024-05-31"] == 1
        assert stats["packages"] == [("a", 2), ("b", 1)] and stats["total"] == 3
    finally:
        engine.dispose()


def test_download_recorder_writes_a_batch(db_url: str) -> None:
    """One flush writes every pending download (rows of different shapes in one batch), the token's
    name as it was then, and each file's and channel's download count, on both databases."""
    from datetime import timedelta

    from taipan.db.models import File, Token
    from taipan.services.downloads import DownloadRecorder

    upgrade(db_url)
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    try:
        with sessions() as db, db.begin():
            user = User(username="rita", password_hash="x")
            a, b = Channel(name="a", path="a"), Channel(name="b", path="b")
            db.add_all([user, a, b])
            db.flush()
            token = Token(user_id=user.id, name="ci", token_hash="0" * 64,
                          expires_at=datetime.now(UTC) + timedelta(days=1))
            files = [File(channel_id=ch.id, name=n, version="1", subdir="noarch", filename=f"{n}-1-0.conda",
                          ckey=f"noarch/{n}-1-0.conda", sha256="0" * 64, md5="0" * 32, size=10, record="{}")
                     for ch, n in ((a, "x"), (a, "y"), (b, "z"))]
            db.add_all([token, *files])
            db.flush()
            ids = {f.name: (f.id, f.channel_id) for f in files}
            token_id, a_id, b_id = token.id, a.id, b.id
        recorder = DownloadRecorder(sessions)
        for name in ("x", "x", "y", "z"):
            fid, cid = ids[name]
            recorder.record(channel_id=cid, channel_path="a" if cid == a_id else "b", file_id=fid, family="conda",
                            package=name, version="1", ckey=f"noarch/{name}-1-0.conda", subdir="noarch",
                            filename=f"{name}-1-0.conda", size=10, user_id=None, username=None,
                            token_id=token_id if name == "y" else None, remote_addr="127.0.0.1", user_agent=None)
        recorder.record(channel_id=None, channel_path="gone", ckey="noarch/old-1-0.conda")  # a minimal row
        assert recorder.flush() == 5 and recorder.flush() == 0
        with sessions() as db:
            got = db.execute(select(Download.package, Download.token_name, Download.family)
                             .order_by(Download.id)).all()
            assert [tuple(r) for r in got] == [("x", None, "conda"), ("x", None, "conda"), ("y", "ci", "conda"),
                                               ("z", None, "conda"), ("", None, "conda")]
            counts = dict(db.execute(select(File.name, File.download_count)).all())
            assert counts == {"x": 2, "y": 1, "z": 1}
            assert dict(db.execute(select(Channel.id, Channel.download_count)).all()) == {a_id: 3, b_id: 1}
    finally:
        engine.dispose()
