"""The consumer loop of ``taipan worker``: Huey's consumer in the main thread (it owns the signal
handlers: SIGINT finishes running jobs, SIGTERM stops at once) plus the cron scheduler thread."""

from __future__ import annotations

import logging

from taipan.jobs.redis import HueyQueue
from taipan.jobs.scheduler import CronScheduler

log = logging.getLogger(__name__)


def run_worker(queue: HueyQueue, scheduler: CronScheduler | None, *, workers: int = 2) -> None:
    consumer = queue.consumer(workers=workers)
    if scheduler is not None:
        scheduler.start()
    log.info("taipan worker: %d thread(s) on queue %r, scheduler %s", workers, queue.name,
             "on" if scheduler else "off")
    try:
        consumer.run()
    finally:
        if scheduler is not None:
            scheduler.stop()
