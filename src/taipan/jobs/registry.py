"""The job registry: a job is a named function taking one JSON-serializable dict.

Handlers are registered by the composition root (the runtime), which closes them over the
services they need; the queues only ever see a name and a payload, so the same job runs in a
thread of ``taipan serve`` or in a ``taipan worker`` on another machine.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], None]


class UnknownJob(LookupError):
    pass


class JobRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if name in self._handlers and self._handlers[name] is not handler:
            raise ValueError(f"job {name!r} is already registered")
        self._handlers[name] = handler

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def check_payload(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        if name not in self._handlers:
            raise UnknownJob(name)
        # A round trip through JSON: what a worker on another machine will receive.
        return json.loads(json.dumps(payload))

    def run(self, name: str, payload: dict[str, Any]) -> None:
        """Run one job; failures are logged, never raised into the queue's machinery."""
        handler = self._handlers.get(name)
        if handler is None:
            log.error("no handler for job %r; is this worker older than the server?", name)
            return
        start = time.monotonic()
        try:
            handler(payload)
        except Exception:
            log.exception("job %s %s failed", name, payload)
        else:
            log.info("job %s done in %.2fs", name, time.monotonic() - start)


class JobQueue(Protocol):
    """What services and drivers see of a queue, whatever the backend."""

    registry: JobRegistry

    def enqueue(self, name: str, payload: dict[str, Any]) -> None:
        """Run ``name(payload)`` soon, in this process or on a worker. Call after commit."""

    def once(self, key: str, ttl: int) -> bool:
        """True for the first caller of ``key`` within ``ttl`` seconds, across all processes
        that share the backend; False for everyone else."""

    def start(self) -> None:
        """Start consuming jobs in this process (the in-process backend), if this backend does."""

    def stop(self, timeout: float = 10.0) -> None: ...
