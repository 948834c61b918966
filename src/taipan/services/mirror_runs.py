"""Bookkeeping of mirror runs: who runs a mirror (a claim in the database), its heartbeat and
progress (sync_state), stop requests, and what a run needs from the outside world (MirrorEnv).

Everything goes through the mirrors row, so a run in a ``taipan serve`` thread or in a ``taipan
worker`` on another machine is claimed, observed and stopped the same way.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.mirrors import Mirror
from taipan.db.models import utcnow
from taipan.domain import filters as flt
from taipan.domain.egress import EgressPolicy
from taipan.storage.base import BlobStore
from taipan.storage.secrets import SecretBox
from taipan.upstreams.conda import CondaUpstream

log = logging.getLogger(__name__)
# The steps of a conda run; the other mirror types name their own five (their module's STEPS).
STEPS = ("Listing upstream subdirs", "Fetching upstream repodata", "Filtering records",
         "Fetching files", "Publishing the index")
STALE_AFTER = timedelta(seconds=60)
JOB_SYNC = "mirror.sync"
HEARTBEAT_SECONDS = 1.0


class Stopped(Exception):
    pass


@dataclass
class MirrorEnv:
    """What a mirror run needs from the outside world (built by the composition root)."""

    sessions: sessionmaker[Session]
    blobs: BlobStore
    notify: Callable[[str, set[str]], None] = lambda channel_id, subdirs: None
    enqueue: Callable[[str, dict[str, Any]], None] | None = None
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    upstream_factory: Callable[..., CondaUpstream] = CondaUpstream
    # Where mirrors may connect (None: anywhere; the composition root always sets the policy).
    egress: EgressPolicy | None = None
    # Seals and opens upstream credentials (None: this process cannot store any).
    secrets: SecretBox | None = None
    download_threads: int = 4
    # Set when the process shuts down: runs give up at their next check and are resumed later.
    shutdown: threading.Event = field(default_factory=threading.Event)


_CATEGORIES = {
    "upstream_unreachable": "upstream unreachable", "upstream_refused": "upstream not allowed",
    "upstream_missing_file": "HTTP 404", "upstream_checksum": "upstream file does not match its index",
    "upstream_corrupt": "upstream index invalid", "upstream_no_subdirs": "not a conda channel",
    "upstream_not_a_channel": "not a conda channel", "secret_unreadable": "credentials unreadable",
}


def error_category(exc: BaseException | None, text: str | None = None) -> str:
    """What non-admins may learn of a failed run: a category, never the upstream's own words."""
    code = getattr(exc, "code", None)
    if isinstance(exc, Stopped):
        return "stopped"
    if code in _CATEGORIES:
        return _CATEGORIES[code]
    message = text or (getattr(exc, "message", None) or "")
    http = re.search(r"\bHTTP (\d{3})\b", message)
    if http:
        return f"HTTP {http.group(1)}"
    if exc is None:
        for needle, category in (("unreachable", "upstream unreachable"), ("stopped", "stopped"),
                                 ("could not be queued", "job queue unavailable"),
                                 ("could not be fetched", "some files could not be fetched")):
            if needle in message:
                return category
    return "mirror run failed"


def initial_sync_state() -> dict[str, Any]:
    return {"last_ckey": None, "last_exception": None, "total_steps_count": len(STEPS),
            "current_step_number": 0, "current_step_percentage": 0, "current_step_description": "",
            "count": {"active": 0, "failed": 0, "passive": 0, "removed": 0, "conflicts": 0, "invalid": 0,
                      **flt.empty_counts()}}


def owner_alive(owner: str | None) -> bool:
    """False only when we can tell: the owner ran on this host and its process is gone."""
    if not owner or ":" not in owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(m: Mirror, now: datetime | None = None) -> bool:
    now = now or datetime.now(UTC)
    if m.state != "running":
        return False
    return m.heartbeat_at is None or m.heartbeat_at < now - STALE_AFTER or not owner_alive(m.run_owner)


def claim(db: Session, mirror_id: str, owner: str) -> str | None:
    """Move a pending (or abandoned running) mirror to running for us; return the run id."""
    m = db.get(Mirror, mirror_id)
    if m is None or not (m.state == "pending" or is_stale(m)):
        return None
    run_id = str(uuid.uuid4())
    state = initial_sync_state()
    state.update(run_id=run_id, started_at=utcnow().isoformat(), worker=owner)
    res = db.execute(update(Mirror).where(Mirror.id == m.id, Mirror.state == m.state,
                                          Mirror.run_id.is_(None) if m.run_id is None
                                          else Mirror.run_id == m.run_id)
                     .values(state="running", run_id=run_id, run_owner=owner, heartbeat_at=utcnow(),
                             stop_requested=False, sync_state=state, last_run_at=utcnow()))
    db.commit()
    return run_id if res.rowcount == 1 else None


class Progress:
    """The run's sync_state, written (with a heartbeat) once a second by a background thread,
    which also notices a stop request or a lost claim."""

    def __init__(self, env: MirrorEnv, mirror_id: str, run_id: str, state: dict[str, Any],
                 steps: tuple[str, ...] = STEPS) -> None:
        self.env, self.mirror_id, self.run_id = env, mirror_id, run_id
        self.state = state
        self.steps = steps
        self.stop = threading.Event()
        self.lost = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, name=f"mirror-{mirror_id[:8]}", daemon=True)

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(10)

    def step(self, number: int, pct: float = 0) -> None:
        with self._lock:
            self.state.update(current_step_number=number, current_step_description=self.steps[number - 1],
                              current_step_percentage=round(pct))
        self.check()

    def percent(self, pct: float, last_ckey: str | None = None) -> None:
        with self._lock:
            self.state["current_step_percentage"] = round(pct)
            if last_ckey:
                self.state["last_ckey"] = last_ckey

    def contacted(self) -> None:
        """The upstream answered (what `--run_now` waits for before it returns)."""
        with self._lock:
            self.state["upstream_contacted"] = True

    def count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.state["count"][key] += n

    def check(self) -> None:
        if self.env.shutdown.is_set():
            raise Stopped("the server shut down")
        if self.stop.is_set():
            raise Stopped("lost the run to another worker" if self.lost else "stopped on request")

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return orjson.loads(orjson.dumps(self.state))

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                with self.env.sessions() as db:
                    if not self.stop.is_set() and db.scalar(
                            select(Mirror.stop_requested).where(Mirror.id == self.mirror_id)):
                        # The run gives up at its next check (a download in flight ends first): the
                        # state written now says so (sync_state.stopping).
                        self.stop.set()
                        with self._lock:
                            self.state["stopping"] = True
                    res = db.execute(update(Mirror).where(Mirror.id == self.mirror_id,
                                                          Mirror.run_id == self.run_id)
                                     .values(heartbeat_at=utcnow(), sync_state=self.snapshot()))
                    db.commit()
                if res.rowcount == 0:
                    self.lost = True
                    self.stop.set()
            except Exception:  # a busy database must not kill the run; try again next beat
                log.warning("mirror heartbeat failed", exc_info=True)
