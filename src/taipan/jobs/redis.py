"""The distributed backend: Huey on Redis. ``taipan worker`` processes consume the queue.

Huey is small (one dependency: redis-py), keeps its queue, schedule and locks in Redis only (no
second broker), and has a consumer with thread workers and graceful shutdown. We use one generic
Huey task that dispatches to our registry, so job code never depends on Huey.
"""

from __future__ import annotations

import logging
from typing import Any

from taipan.jobs.registry import JobRegistry

log = logging.getLogger(__name__)


class HueyQueue:
    def __init__(self, registry: JobRegistry, *, redis_url: str, name: str = "taipan") -> None:
        from huey import RedisHuey

        self.registry = registry
        self.name = name
        # results=False: jobs report through the database (mirror state), not Huey's result store.
        self.huey = RedisHuey(name=name, url=redis_url, results=False, utc=True)

        @self.huey.task(name="taipan.job", retries=0)
        def run_job(job: str, payload: dict[str, Any]) -> None:
            registry.run(job, payload)

        self._task = run_job

    @property
    def redis(self) -> Any:
        return self.huey.storage.conn

    def enqueue(self, name: str, payload: dict[str, Any]) -> None:
        self._task(name, self.registry.check_payload(name, payload))

    def once(self, key: str, ttl: int) -> bool:
        # SET NX EX: atomic in Redis, so exactly one of any number of workers gets True.
        return bool(self.redis.set(f"{self.name}:once:{key}", "1", nx=True, ex=max(1, int(ttl))))

    def start(self) -> None:
        """Producers (``taipan serve``) do not consume; ``taipan worker`` calls ``consumer()``."""

    def consumer(self, workers: int = 2) -> Any:
        return self.huey.create_consumer(workers=workers, worker_type="thread", periodic=False,
                                         initial_delay=0.05, max_delay=1.0, backoff=1.5)

    def pending_count(self) -> int:
        return int(self.huey.pending_count())

    def stop(self, timeout: float = 10.0) -> None:
        pass
