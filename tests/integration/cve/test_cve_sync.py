"""`cve sync` against a local HTTP server: NVD API paging and lastModStartDate windows, OSV ETags,
a failing source recorded without touching the store, and the scheduled job."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, select

from taipan.db.cves import Cve, CveSyncState
from taipan.jobs import JobRegistry
from taipan.services import cve_sync
from taipan.settings import CveSettings

DATA = Path(__file__).parents[2] / "data" / "cve"


def nvd_records() -> list[dict]:
    out = []
    for name in ("nvd-2.0-sample.json.gz", "nvd-2.0-sample-trimmed.json.gz"):
        out += json.loads(gzip.open(DATA / name).read())["vulnerabilities"]
    return out


class Feeds:
    def __init__(self) -> None:
        self.records = nvd_records()
        self.changed: list[dict] = []
        self.osv = gzip.open(DATA / "osv-pypi-sample.json.gz").read()
        self.etag = '"v1"'
        self.osv_status = 200
        self.requests: list[tuple[str, dict, dict]] = []


@pytest.fixture
def feeds():
    state = Feeds()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.requests.append((url.path, q, {k.lower(): v for k, v in self.headers.items()}))
            if url.path == "/nvd":
                pool = state.changed if "lastModStartDate" in q else state.records
                start, size = int(q.get("startIndex", 0)), int(q.get("resultsPerPage", 2000))
                page = {"resultsPerPage": size, "startIndex": start, "totalResults": len(pool),
                        "format": "NVD_CVE", "version": "2.0", "vulnerabilities": pool[start:start + size]}
                return self._send(200, json.dumps(page).encode())
            if url.path == "/osv/PyPI.json":
                if state.osv_status != 200:
                    return self._send(state.osv_status, b"oops")
                if self.headers.get("If-None-Match") == state.etag:
                    return self._send(304, headers={"ETag": state.etag})
                return self._send(200, state.osv, {"ETag": state.etag})
            self._send(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield state
    server.shutdown()
    server.server_close()


def test_sync_pages_windows_etags_and_failures(runtime, feeds):
    cfg = CveSettings(nvd_url=feeds.base + "/nvd", osv_urls=[feeds.base + "/osv/PyPI.json"], nvd_page_size=5,
                      nvd_api_key="secret-key", timeout=10)
    first = cve_sync.sync(runtime.sessions, cfg)
    assert first[cfg.nvd_url]["ok"] and first[cfg.nvd_url]["records"] == 17
    assert first[cfg.osv_urls[0]]["ok"] and first[cfg.osv_urls[0]]["records"] == 7
    nvd_calls = [q for path, q, _ in feeds.requests if path == "/nvd"]
    assert [q["startIndex"] for q in nvd_calls] == ["0", "5", "10", "15"]  # paged, no date window yet
    assert not any("lastModStartDate" in q for q in nvd_calls)
    assert all(h.get("apikey") == "secret-key" for p, _, h in feeds.requests if p == "/nvd")
    with runtime.sessions() as db:
        assert db.scalar(select(func.count()).select_from(Cve)) == 17
        assert db.get(CveSyncState, cfg.osv_urls[0]).etag == '"v1"'

    # Next time: only what changed since the last sync, and the unchanged OSV file costs a 304.
    feeds.requests.clear()
    rec = json.loads(json.dumps(feeds.records[0]))
    rec["cve"]["lastModified"] = "2030-01-01T00:00:00.000"
    rec["cve"]["descriptions"][0]["value"] = "Changed upstream."
    feeds.changed = [rec]
    second = cve_sync.sync(runtime.sessions, cfg)
    assert second[cfg.nvd_url]["records"] == 1 and second[cfg.nvd_url]["updated"] == 1
    assert second[cfg.osv_urls[0]] == {"ok": True, "not_modified": True}
    (nvd_call,) = [q for path, q, _ in feeds.requests if path == "/nvd"]
    start = datetime.fromisoformat(nvd_call["lastModStartDate"].replace("Z", "+00:00"))
    assert abs((datetime.fromisoformat(first[cfg.nvd_url]["until"]) - start).total_seconds() - 300) < 2
    assert "lastModEndDate" in nvd_call
    osv_call = next(h for p, _, h in feeds.requests if p.startswith("/osv"))
    assert osv_call.get("if-none-match") == '"v1"'
    with runtime.sessions() as db:
        assert db.get(Cve, rec["cve"]["id"]).description == "Changed upstream."

    # A failing source is recorded; the other one still syncs; nothing half-imported.
    feeds.osv_status = 500
    feeds.etag = '"v2"'
    third = cve_sync.sync(runtime.sessions, cfg)
    assert third[cfg.nvd_url]["ok"] and not third[cfg.osv_urls[0]]["ok"]
    assert "HTTP 500" in third[cfg.osv_urls[0]]["error"]
    feeds.osv_status = 200
    feeds.osv = b'[{"id": "PYSEC-X", "modified": "2024-01-01T00:00:00Z"}, {"id": "PYSEC-Y"}]'
    fourth = cve_sync.sync(runtime.sessions, cfg)
    assert not fourth[cfg.osv_urls[0]]["ok"] and "PYSEC-Y" in fourth[cfg.osv_urls[0]]["error"]
    with runtime.sessions() as db:
        assert db.get(Cve, "PYSEC-X") is None
        state = db.get(CveSyncState, cfg.osv_urls[0])
        assert state.etag == '"v1"' and state.result["ok"] is False  # retried whole next time
        assert "secret-key" not in json.dumps(db.get(CveSyncState, cfg.nvd_url).result)


def test_the_sync_job_is_scheduled_by_cron():
    registry = JobRegistry()
    cfg = CveSettings(sync_cron="*/15 * * * *", nvd_url="", osv_urls=[])
    cve_sync.register(registry, None, cfg)  # type: ignore[arg-type]
    assert cve_sync.SYNC_JOB in registry.names()
    due = cve_sync.due_source(cfg)
    (run,) = list(due(datetime(2026, 12, 3, 4, 30, 12, tzinfo=UTC)))
    assert (run.job, run.key, run.fire_at.second) == (cve_sync.SYNC_JOB, "cve-sync", 0)
    assert list(due(datetime(2026, 12, 3, 4, 31, tzinfo=UTC))) == []
    assert list(cve_sync.due_source(CveSettings(sync_cron=""))(datetime(2026, 12, 3, 4, 30, tzinfo=UTC))) == []
