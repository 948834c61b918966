"""Observability: Prometheus ``/metrics``, ``/healthz`` and ``/readyz``, and a request id per request.

Metrics live in a registry of this app (not prometheus-client's global one), so several apps in one
process (tests) do not mix. Labels never carry channel, package or user names: a route *family*
(repo, api, ui, other), the method and the status class, so the endpoint reveals no private data;
still, only admins (or anyone, with ``TAIPAN_OBSERVABILITY__METRICS_PUBLIC=true``) may read it.
With several server processes each answers for itself (scrape each, or aggregate in Prometheus).
"""

from __future__ import annotations

import contextvars
import gc
import itertools
import json
import logging
import os
import re
import threading
import time
import uuid
from bisect import bisect_left
from itertools import accumulate
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taipan.errors import Forbidden, Unauthenticated
from taipan.runtime import Runtime
from taipan.web.deps import credentials, resolve_principal

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("taipan_request_id", default="-")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    """The app's metrics. ``observe_publish`` and ``count_download`` are called by the indexer and
    the download recorder through the runtime's hooks."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Requests are counted by a collector of ours (see _RequestStats): prometheus-client's Counter
        # and Histogram cost ~1.2 µs per request, a tenth of an answer from memory.
        self.requests = _RequestStats()
        self.registry.register(self.requests)
        self.publish_seconds = Histogram("taipan_index_publish_seconds", "Time to publish a partition's index",
                                         ["family"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.publish_bytes = Gauge("taipan_index_publish_bytes", "Bytes of the last published index file set",
                                   ["family"], registry=self.registry)
        # Package serving's GETs and HEADs that took the full path (a cache to refresh, a file to stream
        # from the blob store, a lookup...), not answered from memory ahead of the application; the
        # share of taipan_http_requests{route="repo"} it is says how warm the serving caches are.
        self.repo_full_path = Counter("taipan_repo_full_path_requests",
                                      "Package-serving GET and HEAD requests not answered from memory",
                                      registry=self.registry)
        self.downloads = Counter("taipan_downloads", "Artifact downloads served", ["family"],
                                 registry=self.registry)
        self.registry.register(_StateCollector(runtime))
        self._download_children: dict[str, Any] = {}
        # Request ids made here: a random prefix per process (so several workers never repeat each
        # other's) and a counter; unique, which is all a request id needs, without a random read per
        # request.
        self._rid_prefix = os.urandom(4).hex()
        self._rid_next = itertools.count().__next__

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.observe(route, method, status, seconds)

    def request_id(self, given: bytes | None) -> str:
        """The request's id: a sane X-Request-ID as given, else a new one (16 hex digits)."""
        if given:
            text = given.decode("latin-1")
            if _REQUEST_ID_RE.match(text):
                return text
        return f"{self._rid_prefix}{self._rid_next() & 0xFFFFFFFF:08x}"

    def observe_publish(self, family: str, seconds: float, size: int) -> None:
        self.publish_seconds.labels(family).observe(seconds)
        self.publish_bytes.labels(family).set(size)

    def count_download(self, family: str) -> None:
        child = self._download_children.get(family)
        if child is None:
            child = self._download_children[family] = self.downloads.labels(family)  # families: a few
        child.inc()


class _RequestStats:
    """``taipan_http_requests_total{route,method,status}`` and ``taipan_http_request_seconds{route}``
    (a histogram over LATENCY_BUCKETS), kept as plain numbers under one lock and turned into metric
    families at scrape time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}
        # route -> per-bucket counts (not cumulative; the last is +Inf) and the sum of seconds
        self._latency: dict[str, tuple[list[int], list[float]]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status // 100)
        bucket = bisect_left(LATENCY_BUCKETS, seconds)
        with self._lock:
            counts = self._counts
            if key in counts:
                counts[key] += 1
            elif len(counts) < 1000:  # methods are the client's choice: keep the label sets bounded
                counts[key] = 1
            latency = self._latency.get(route)
            if latency is None:
                latency = self._latency[route] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
            latency[0][bucket] += 1
            latency[1][0] += seconds

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        with self._lock:
            counts = dict(self._counts)
            latency = {route: (list(b), s[0]) for route, (b, s) in self._latency.items()}
        requests = CounterMetricFamily("taipan_http_requests", "HTTP requests answered",
                                       labels=["route", "method", "status"])
        for (route, method, status_class), n in sorted(counts.items()):
            requests.add_metric([route, method, f"{status_class}xx"], n)
        yield requests
        seconds = HistogramMetricFamily("taipan_http_request_seconds", "Time to answer an HTTP request",
                                        labels=["route"])
        bounds = [*(repr(float(b)) for b in LATENCY_BUCKETS), "+Inf"]
        for route, (per_bucket, total) in sorted(latency.items()):
            seconds.add_metric([route], list(zip(bounds, accumulate(per_bucket), strict=True)), total)
        yield seconds


class _StateCollector:
    """Read at scrape time: mirrors per state and their progress, and the job queue's depth."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        from taipan.db.mirrors import Mirror

        states = GaugeMetricFamily("taipan_mirrors", "Mirrors per state", labels=["state"])
        progress = GaugeMetricFamily("taipan_mirror_progress_percent", "Progress of running mirror syncs",
                                     labels=["mirror_id", "step"])
        try:
            with self.runtime.sessions() as db:
                for state, count in db.execute(text("SELECT state, count(*) FROM mirrors GROUP BY state")):
                    states.add_metric([str(state)], float(count))
                for m in db.query(Mirror).filter(Mirror.state == "running").limit(100):
                    sync = m.sync_state or {}
                    progress.add_metric([m.id, str(sync.get("current_step_number") or "")],
                                        float(sync.get("current_step_percentage") or 0))
        except Exception:  # a scrape must not fail because the database is busy
            pass
        yield states
        yield progress
        indexer = self.runtime.indexer
        loads = CounterMetricFamily("taipan_index_partition_loads",
                                    "How this process came to hold a partition's index: adopted (another "
                                    "process's publication), resumed (its snapshot), full (every row)",
                                    labels=["how"])
        for how, count in (("adopted", indexer.adoptions), ("resumed", indexer.resumes),
                           ("full", indexer.full_loads)):
            loads.add_metric([how], float(count))
        yield loads
        # Objects left out of the garbage collector's passes since the process started
        # (runtime.freeze_startup_objects), and the full passes it made since.
        yield GaugeMetricFamily("taipan_gc_frozen_objects", "Objects of the process's start that the "
                                "garbage collector does not walk", value=float(gc.get_freeze_count()))
        yield CounterMetricFamily("taipan_gc_full_collections", "Full passes of the garbage collector",
                                  value=float(gc.get_stats()[2]["collections"]))
        depth = GaugeMetricFamily("taipan_job_queue_depth", "Jobs waiting in the queue")
        pending = getattr(self.runtime.jobs, "pending_count", None)
        try:
            depth.add_metric([], float(pending() if callable(pending) else 0))
        except Exception:
            depth.add_metric([], float("nan"))
        yield depth


def route_family(path: str) -> str:
    if path.startswith("/api/repo/") or path.startswith("/t/"):
        return "repo"
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/ui"):
        return "ui"
    return "other"


class ObservabilityMiddleware:
    """Outermost ASGI layer: a request id (taken from a sane X-Request-ID, else made) in a context
    variable for logs and echoed in the answer, and the request's metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = self.metrics.request_id(header(scope, b"x-request-id"))
        # Not reset at the end: each request runs in a task of its own (granian and uvicorn alike),
        # whose context ends with it, and granian writes its access-log line after the application
        # returned, in that task, where the id must still be set.
        request_id.set(rid)
        started = time.perf_counter()
        status = 500
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), rid_header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            family, method = route_family(scope["path"]), scope["method"]
            if family == "repo" and method in ("GET", "HEAD"):
                self.metrics.repo_full_path.inc()
            self.metrics.observe_request(family, method, status, time.perf_counter() - started)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (``name`` in lower case), None when absent."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


router = APIRouter(include_in_schema=False)


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> Response:
    """Ready to serve: the database answers, the blob store's scratch space is writable, and (with
    the Redis backend) the job queue answers. 503 names what is not ready."""
    rt: Runtime = request.app.state.runtime
    checks: dict[str, str] = {}
    try:
        with rt.sessions() as db:
            db.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        probe = rt.blobs.tempdir() / f".ready-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
        checks["blobs"] = "ok"
    except Exception as exc:
        checks["blobs"] = f"failed: {type(exc).__name__}"
    redis = getattr(rt.jobs, "redis", None)
    if callable(redis):
        try:
            redis().ping()
            checks["jobs"] = "ok"
        except Exception as exc:
            checks["jobs"] = f"failed: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return Response(json.dumps({"status": "ok" if ready else "unavailable", "checks": checks}),
                    status_code=200 if ready else 503, media_type="application/json")


@router.get("/metrics")
def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    if not rt.settings.observability.metrics_public:
        kind, value = credentials(request)
        p = resolve_principal(rt, None, kind, value)
        if p is None or not p.authenticated:
            raise Unauthenticated("Metrics need an admin's credentials", "Send an admin token as a Bearer "
                                  "token, or set TAIPAN_OBSERVABILITY__METRICS_PUBLIC=true",
                                  code="authentication_required")
        if not p.is_admin:
            raise Forbidden("Only administrators may read the metrics", "Use an admin's token",
                            code="admin_required")
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the request id, the exception."""

    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
