"""Download history: every package download is recorded (who, channel, file, when).

Rows are buffered and written in batches by a background thread so that serving a file never waits
for a database write; ``flush`` writes what is pending (at shutdown, and in tests).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.models import Channel, Download, File, Token
from taipan.services import cve_hooks

log = logging.getLogger(__name__)


class DownloadRecorder:
    def __init__(self, sessions: sessionmaker[Session], *, interval: float = 0.5, batch: int = 500,
                 on_record: list[Callable[[str], None]] | None = None) -> None:
        self._sessions = sessions
        self._on_record = on_record if on_record is not None else []
        self._queue: queue.Queue[dict[str, Any]] = queue.Queue()
        self._interval = interval
        self._batch = batch
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="taipan-downloads", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def record(self, **row: Any) -> None:
        row.setdefault("at", datetime.now(UTC))
        self._queue.put(row)
        for hook in self._on_record:
            try:
                hook(str(row.get("family") or ""))
            except Exception:  # an observer never breaks serving
                log.exception("download hook failed")

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # a failed batch must not kill the recorder thread
                log.exception("could not record downloads")

    def flush(self) -> int:
        with self._lock:
            rows: list[dict[str, Any]] = []
            while True:
                try:
                    rows.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            if not rows:
                return 0
            with self._sessions() as db, db.begin():
                _annotate(db, rows)
                db.add_all(Download(**r) for r in rows)
                for file_id, n in Counter(r["file_id"] for r in rows if r.get("file_id")).items():
                    db.execute(update(File).where(File.id == file_id)
                               .values(download_count=File.download_count + n))
                for cid, n in Counter(r["channel_id"] for r in rows if r.get("channel_id")).items():
                    db.execute(update(Channel).where(Channel.id == cid)
                               .values(download_count=Channel.download_count + n))
            return len(rows)


def _annotate(db: Session, rows: list[dict[str, Any]]) -> None:
    """Add what the report wants to know as it was at download time: the name of the token used and
    the CVEs known for the file (one query each per batch)."""
    token_ids = {r["token_id"] for r in rows if r.get("token_id") and not r.get("token_name")}
    names = dict(db.execute(select(Token.id, Token.name).where(Token.id.in_(token_ids))).all()) if token_ids else {}
    try:
        cves = cve_hooks.cve_summaries(db, {r["file_id"] for r in rows if r.get("file_id")})
    except Exception:  # the CVE store never stops downloads from being recorded
        log.exception("could not look up CVEs of downloaded files")
        cves = {}
    for r in rows:
        if r.get("token_id") in names:
            r["token_name"] = names[r["token_id"]]
        summary = cves.get(r.get("file_id") or "")
        if summary is not None and summary.ids:
            r["cve_ids"] = " ".join(summary.ids)
            r["cve_score"] = summary.max_score
