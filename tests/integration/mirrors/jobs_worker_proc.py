"""A worker process for the job-system tests: Huey consumer + cron scheduler, one job that appends
a line to a file. Usage: python jobs_worker_proc.py REDIS_URL QUEUE OUTFILE FIRE_AT_ISO"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from taipan.jobs import CronScheduler, DueRun, JobRegistry
from taipan.jobs.redis import HueyQueue
from taipan.jobs.worker import run_worker


def main() -> None:
    redis_url, queue_name, out, fire_at = sys.argv[1:5]
    registry = JobRegistry()

    def record(payload: dict) -> None:
        with open(out, "a") as fh:
            fh.write(f"{os.getpid()} {payload['mirror']}\n")

    registry.register("test.record", record)
    queue = HueyQueue(registry, redis_url=redis_url, name=queue_name)
    due = datetime.fromisoformat(fire_at)

    def source(now: datetime) -> list[DueRun]:
        # Always due: only the lock may keep the second worker from firing it again.
        return [DueRun("mirror-1", due, "test.record", {"mirror": "mirror-1"})]

    with open(out + f".ready.{os.getpid()}", "w"):
        pass
    run_worker(queue, CronScheduler(queue, [source], tick_seconds=0.1), workers=1)


if __name__ == "__main__":
    main()
