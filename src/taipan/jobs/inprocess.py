"""The default backend: jobs run on a small thread pool inside ``taipan serve``."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taipan.jobs.registry import JobRegistry

log = logging.getLogger(__name__)


class InProcessQueue:
    """Runs jobs on ``workers`` threads of this process. ``once`` is process-local, which is
    enough because with this backend only this process runs a scheduler."""

    def __init__(self, registry: JobRegistry, *, workers: int = 2) -> None:
        self.registry = registry
        self.workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._once: dict[str, float] = {}
        self._pending: list[tuple[str, dict[str, Any]]] = []

    def start(self) -> None:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="taipan-job")
                pending, self._pending = self._pending, []
        for name, payload in pending:
            self.enqueue(name, payload)

    def enqueue(self, name: str, payload: dict[str, Any]) -> None:
        payload = self.registry.check_payload(name, payload)
        with self._lock:
            if self._pool is None:  # not started yet (e.g. during app startup): keep it
                self._pending.append((name, payload))
                return
            self._pool.submit(self.registry.run, name, payload)

    def once(self, key: str, ttl: int) -> bool:
        now = time.monotonic()
        with self._lock:
            self._once = {k: t for k, t in self._once.items() if t > now}
            if key in self._once:
                return False
            self._once[key] = now + ttl
            return True

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            # Running jobs notice the shutdown through their own stop checks; do not wait forever.
            waiter = threading.Thread(target=pool.shutdown, kwargs={"cancel_futures": True})
            waiter.start()
            waiter.join(timeout)
