"""`taipan cve sync` and its scheduled job: fetch the configured NVD API and OSV files incrementally
and import what changed.

NVD: the first sync reads every CVE page by page; later ones ask only for CVEs modified since the last
successful sync (``lastModStartDate``/``lastModEndDate``). OSV files are fetched with the ETag (and
Last-Modified) of the last successful fetch, so an unchanged file costs one 304. Each source is
imported in its own transaction: a failed source leaves the store as it was and is retried whole
next time; the others still sync. Where each source stands is in ``cve_sync_state``.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from taipan.db.cves import CveSyncState
from taipan.db.models import utcnow
from taipan.domain import cve as rules
from taipan.errors import TaipanError
from taipan.jobs import DueRun, JobRegistry
from taipan.services import cve_import
from taipan.settings import CveSettings
from taipan.upstreams import cve_feeds

log = logging.getLogger(__name__)
SYNC_JOB = "cve.sync"
# NVD's clocks and ours differ a little; overlapping windows are harmless (imports are idempotent).
OVERLAP = timedelta(minutes=5)


def _state(db: Session, url: str) -> CveSyncState:
    row = db.get(CveSyncState, url)
    if row is None:
        row = CveSyncState(url=url, result={})
        db.add(row)
    return row


def _records(pages: Iterable[Path]) -> Iterator[rules.CveRecord]:
    for page in pages:
        yield from cve_import.read_file(page)
        page.unlink(missing_ok=True)


def _record_failure(sessions: sessionmaker[Session], url: str, exc: Exception) -> dict[str, Any]:
    message = exc.message if isinstance(exc, TaipanError) else f"{type(exc).__name__}"
    result = {"ok": False, "error": message}
    with sessions() as db:
        row = _state(db, url)
        row.result = {**result, "at": utcnow().isoformat()}
        db.commit()
    log.warning("cve sync of %s failed: %s", url.split("?", 1)[0], message)
    return result


def sync_nvd(sessions: sessionmaker[Session], cfg: CveSettings, now: datetime | None = None) -> dict[str, Any]:
    url = cfg.nvd_url
    until = now or datetime.now(UTC)
    try:
        with sessions() as db, tempfile.TemporaryDirectory(prefix="taipan-nvd-") as tmp:
            row = _state(db, url)
            since = (datetime.fromisoformat(row.last_modified) - OVERLAP) if row.last_modified else None
            pages = cve_feeds.nvd_pages(url, Path(tmp), since=since, until=until, api_key=cfg.nvd_api_key,
                                        page_size=cfg.nvd_page_size, timeout=cfg.timeout)
            try:
                result = cve_import.import_records(db, _records(pages))
            except BaseException:
                db.rollback()
                raise
            row = _state(db, url)
            row.last_modified, row.synced_at = until.isoformat(), utcnow()
            row.result = {"ok": True, **{k: v for k, v in result.items() if k != "matching"},
                          "since": since.isoformat() if since else None, "until": until.isoformat()}
            answer = dict(row.result)
            db.commit()
            return answer
    except Exception as exc:  # noqa: BLE001 - recorded, and the other sources still sync
        return _record_failure(sessions, url, exc)


def sync_osv(sessions: sessionmaker[Session], url: str, cfg: CveSettings) -> dict[str, Any]:
    try:
        with sessions() as db, tempfile.TemporaryDirectory(prefix="taipan-osv-") as tmp:
            row = _state(db, url)
            name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1] or "osv.json"
            if not name.endswith((".zip", ".json", ".json.gz")):
                name += ".json"
            fetched = cve_feeds.fetch_if_changed(url, Path(tmp) / name, etag=row.etag,
                                                 last_modified=row.last_modified, timeout=cfg.timeout)
            if fetched.path is None:
                row.synced_at = utcnow()
                row.result = {"ok": True, "not_modified": True}
                db.commit()
                return {"ok": True, "not_modified": True}
            try:
                result = cve_import.import_paths(db, [fetched.path])
            except BaseException:
                db.rollback()
                raise
            row = _state(db, url)
            row.etag, row.last_modified, row.synced_at = fetched.etag, fetched.last_modified, utcnow()
            row.result = {"ok": True, **{k: v for k, v in result.items() if k != "matching"}}
            answer = dict(row.result)
            db.commit()
            return answer
    except Exception as exc:  # noqa: BLE001
        return _record_failure(sessions, url, exc)


def sync(sessions: sessionmaker[Session], cfg: CveSettings) -> dict[str, dict[str, Any]]:
    """Sync every configured source; {source url: its result}."""
    results: dict[str, dict[str, Any]] = {}
    if cfg.nvd_url:
        results[cfg.nvd_url] = sync_nvd(sessions, cfg)
    for url in cfg.osv_urls:
        results[url] = sync_osv(sessions, url, cfg)
    return results


def register(registry: JobRegistry, sessions: sessionmaker[Session], cfg: CveSettings) -> None:
    registry.register(SYNC_JOB, lambda _: sync(sessions, cfg))


def due_source(cfg: CveSettings) -> Any:
    """The scheduler's source for the CVE sync: due each minute ``TAIPAN_CVE__SYNC_CRON`` matches."""
    def due(now: datetime) -> Iterable[DueRun]:
        if not cfg.sync_cron:
            return
        from croniter import croniter

        minute = now.replace(second=0, microsecond=0)
        try:
            hit = croniter.match(cfg.sync_cron, minute)
        except (ValueError, KeyError):
            log.error("TAIPAN_CVE__SYNC_CRON %r is not a cron expression", cfg.sync_cron)
            return
        if hit:
            yield DueRun(key="cve-sync", fire_at=minute, job=SYNC_JOB, payload={})
    return due
