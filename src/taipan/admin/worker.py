"""`taipan worker`: consume the distributed job queue (Huey on Redis) and run the cron scheduler.

Start as many as you like, on as many machines as share the database, the blob store and Redis;
each job runs once, and each cron schedule fires once per scheduled time.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from typing import Any

from taipan.admin.main import EXTRA_COMMANDS
from taipan.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=2, help="jobs run at once by this worker (2)")
    parser.add_argument("--no-scheduler", action="store_true",
                        help="do not fire cron schedules from this worker")
    parser.add_argument("--tick", type=float, default=None,
                        help="seconds between two looks at the schedules (default 20)")
    parser.add_argument("--log-level", default="info")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from taipan.db.migrate import upgrade
    from taipan.jobs.redis import HueyQueue
    from taipan.jobs.worker import run_worker
    from taipan.runtime import build_runtime, freeze_startup_objects

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream request is too much
    from taipan.admin.logs import redact_handlers

    redact_handlers()
    if settings.jobs.backend != "redis":
        print("error: the in-process job backend runs inside `taipan serve`; a worker needs a shared "
              "queue.\nhint: set TAIPAN_JOBS__BACKEND=redis and TAIPAN_JOBS__REDIS_URL=redis://HOST:6379/0 "
              "for the server and every worker", file=sys.stderr)
        return 2
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    assert isinstance(rt.jobs, HueyQueue)
    problem = redis_problem(rt.jobs)
    if problem:
        rt.close()
        print(f"error: cannot reach Redis at {_redact(settings.jobs.redis_url)}: {problem}\n"
              "hint: start Redis, or fix TAIPAN_JOBS__REDIS_URL (the same for the server and every worker)",
              file=sys.stderr)
        return 2
    freeze_startup_objects()
    scheduler = None if args.no_scheduler or not settings.jobs.scheduler else rt.scheduler
    if scheduler is not None and args.tick:
        scheduler.tick_seconds = args.tick
    try:
        rt.downloads.start()
        run_worker(rt.jobs, scheduler, workers=args.threads)
    finally:
        rt.close()
    return 0


def redis_problem(queue: Any) -> str | None:
    """Why the queue's Redis cannot be used, or None. Checked once at start-up: without it the
    consumer logs a traceback per thread several times a second and never says what is wrong."""
    try:
        queue.redis.ping()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _redact(url: str | None) -> str:
    return re.sub(r"://([^/@:]*):[^/@]*@", r"://\1:***@", str(url or ""))


EXTRA_COMMANDS["worker"] = ("run background jobs (mirror syncs) from the Redis queue", add_arguments, run)

# `python -m taipan.admin.main` runs that module as __main__, a second copy with its own registry.
_main = sys.modules.get("__main__")
if getattr(_main, "EXTRA_COMMANDS", None) is not None and _main.EXTRA_COMMANDS is not EXTRA_COMMANDS:  # type: ignore[union-attr]
    _main.EXTRA_COMMANDS["worker"] = EXTRA_COMMANDS["worker"]  # type: ignore[union-attr]
