"""Cron scheduling that fires each schedule once, however many processes run a scheduler.

Every process that may run jobs (``taipan serve`` with the in-process backend, each ``taipan
worker``) runs this loop. On each tick it asks its ``source`` which schedules are due; for each
one, the first process to take the lock ``cron:<key>:<scheduled minute>`` (Redis ``SET NX`` with
the Huey backend) and then win ``claim`` (a compare-and-set in the database that advances the
schedule) enqueues the job. Everyone else skips it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from taipan.jobs.registry import JobQueue

log = logging.getLogger(__name__)


@dataclass
class DueRun:
    key: str  # stable per schedule, e.g. the mirror id
    fire_at: datetime  # the scheduled time that came due
    job: str
    payload: dict[str, Any]
    claim: Callable[[], bool] = field(default=lambda: True)


DueSource = Callable[[datetime], Iterable[DueRun]]


class CronScheduler:
    def __init__(self, queue: JobQueue, sources: list[DueSource], *, tick_seconds: float = 20.0,
                 lock_ttl: int = 24 * 3600) -> None:
        self.queue = queue
        self.sources = sources
        self.tick_seconds = tick_seconds
        self.lock_ttl = lock_ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self, now: datetime | None = None) -> int:
        """Enqueue what is due now; return how many jobs this process enqueued."""
        now = now or datetime.now(UTC)
        fired = 0
        for source in self.sources:
            try:
                due = list(source(now))
            except Exception:
                log.exception("cron source failed")
                continue
            for run in due:
                stamp = run.fire_at.astimezone(UTC).strftime("%Y%m%dT%H%M")
                if not self.queue.once(f"cron:{run.key}:{stamp}", self.lock_ttl):
                    continue
                try:
                    if not run.claim():
                        continue
                    self.queue.enqueue(run.job, run.payload)
                    fired += 1
                    log.info("cron: enqueued %s for %s (due %s)", run.job, run.key, stamp)
                except Exception:
                    log.exception("cron: could not enqueue %s for %s", run.job, run.key)
        return fired

    def _loop(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            self.tick()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="taipan-cron", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
