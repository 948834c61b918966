"""Composition root: builds the engine, blob store, indexer and recorders from Settings.

This is the only module that names concrete backends.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.engine import make_engine, make_sessionmaker
from taipan.jobs import CronScheduler, JobQueue, JobRegistry
from taipan.services.downloads import DownloadRecorder
from taipan.services.indexing import Indexer, release_memory, ring_on_commit
from taipan.settings import Settings
from taipan.storage.base import BlobStore
from taipan.storage.bell import open_bell
from taipan.storage.filesystem import FilesystemBlobStore


@dataclass
class Hooks:
    """Observers of what the services do (metrics): called with plain values, never allowed to fail."""

    on_publish: list[Callable[[str, float, int], None]] = field(default_factory=list)
    on_download: list[Callable[[str], None]] = field(default_factory=list)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    indexer: Indexer
    downloads: DownloadRecorder
    extras: dict[str, Any] = field(default_factory=dict)
    hooks: Hooks = field(default_factory=Hooks)
    jobs: JobQueue | None = None
    scheduler: CronScheduler | None = None

    def start(self) -> None:
        self.downloads.start()
        if self.jobs is not None and self.settings.jobs.backend == "inprocess":
            # In-process backend: this server runs the jobs and the cron schedules itself.
            from taipan.services import mirroring

            self.jobs.start()
            mirroring.recover_local(self.extras["mirror_env"])
            if self.scheduler is not None and self.settings.jobs.scheduler:
                self.scheduler.start()

    def close(self) -> None:
        if "mirror_env" in self.extras:
            self.extras["mirror_env"].shutdown.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.jobs is not None:
            self.jobs.stop()
        self.downloads.stop()
        self.engine.dispose()


# glibc's mallopt() parameter for the number of arenas.
_M_ARENA_MAX = -8


def tune_process(settings: Settings) -> None:
    """Bound what a server process keeps in memory: its shard cache's budget, and what the C heap
    keeps once requests are done (glibc only; once per process, before its request threads start).

    glibc gives each thread that allocates its own arena (up to 8 per core): the ~40 request threads
    each kept the free pages of what they once held (a 1 MiB package read, a piece of a streamed
    repodata.json), tens of MB that no object uses. ``server.malloc_arenas`` caps their number, and
    a daemon thread gives the heap's free pages back every ``server.malloc_trim_seconds``."""
    import ctypes
    import threading
    import time

    from taipan.services import publication

    publication.ADDRESSED_CACHE.limit = settings.server.shard_cache_size
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    if settings.server.malloc_arenas > 0:
        mallopt(_M_ARENA_MAX, settings.server.malloc_arenas)
    interval = settings.server.malloc_trim_seconds
    if interval > 0:
        def trim() -> None:
            while True:
                time.sleep(interval)
                release_memory()

        threading.Thread(target=trim, name="taipan-malloc-trim", daemon=True).start()


def freeze_startup_objects() -> None:
    """Keep what a long-running process made at its start out of the cyclic garbage collector's
    full passes: modules, classes, functions, the application and its routes, ~120,000 container
    objects that live as long as the process. Each full pass walked all of them: 0.1 s with every
    thread stopped, once or twice after a publish of 100,000 records and some forty times in the
    first build of a million (benchmarks/README.md, Garbage collection). Called once the process is
    set up; what it makes afterwards (indexes, publications) is collected as before. Cycles among
    the frozen objects are never collected, so garbage made so far is collected first."""
    import gc

    gc.collect()
    gc.freeze()


def build_runtime(settings: Settings | None = None) -> Runtime:
    settings = settings or Settings()
    make_home(settings)
    engine = make_engine(settings.database_url, echo=settings.database.echo)
    sessions = make_sessionmaker(engine)
    blobs = _blob_store(settings)
    hooks = Hooks()
    # Processes of this home on this machine tell each other of changes at once (see storage/bell.py).
    bell = open_bell(settings.home / "run")
    ring_on_commit(sessions, bell)
    rt = Runtime(settings=settings, engine=engine, sessions=sessions, blobs=blobs,
                 indexer=Indexer(sessions, blobs=blobs, on_publish=hooks.on_publish,
                                 memory_limit=settings.server.index_memory_limit, bell=bell),
                 downloads=DownloadRecorder(sessions, on_record=hooks.on_download), hooks=hooks)
    _add_jobs(rt)
    return rt


def _blob_store(settings: Settings) -> BlobStore:
    st = settings.storage
    if st.backend == "s3":
        from taipan.storage.s3 import S3BlobStore

        if not st.s3_bucket:
            raise ValueError("TAIPAN_STORAGE__S3_BUCKET is required with TAIPAN_STORAGE__BACKEND=s3")
        return S3BlobStore(bucket=st.s3_bucket, prefix=st.s3_prefix, endpoint_url=st.s3_endpoint_url,
                           region=st.s3_region, access_key=st.s3_access_key, secret_key=st.s3_secret_key,
                           presign_seconds=st.s3_presign_seconds, create_bucket=st.s3_create_bucket,
                           scratch=Path(st.path) if st.path else settings.home / "spool")
    return FilesystemBlobStore(settings.blob_path)


def make_home(settings: Settings) -> None:
    """$TAIPAN_HOME is owner-only (0700), also when it already existed with looser modes."""
    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.home.stat().st_mode & 0o077:
        settings.home.chmod(0o700)


def tighten_storage(rt: Runtime) -> int:
    """At server start: make the blob store owner-only throughout (dirs 0700, files 0600)."""
    tighten = getattr(rt.blobs, "tighten", None)
    return tighten() if tighten is not None else 0


def _add_jobs(rt: Runtime) -> None:
    """The job queue named by settings.jobs.backend, its handlers, and the cron scheduler."""
    from taipan.domain.egress import EgressPolicy
    from taipan.services import cve_sync, maintenance, mirroring
    from taipan.services.mirror_runs import MirrorEnv
    from taipan.storage.secrets import secret_box
    from taipan.upstreams.conda import CondaUpstream

    registry = JobRegistry()
    jobs_settings = rt.settings.jobs
    queue: JobQueue
    if jobs_settings.backend == "redis":
        from taipan.jobs.redis import HueyQueue

        queue = HueyQueue(registry, redis_url=jobs_settings.redis_url, name=jobs_settings.queue_name)
    elif jobs_settings.backend == "inprocess":
        from taipan.jobs.inprocess import InProcessQueue

        queue = InProcessQueue(registry)
    else:
        raise ValueError(f"Unknown job backend {jobs_settings.backend!r} (use inprocess or redis)")
    egress = EgressPolicy.from_setting(rt.settings.mirrors.allowed_networks)
    env = MirrorEnv(rt.sessions, rt.blobs, notify=lambda cid, subdirs: rt.indexer.notify(cid, subdirs),
                    enqueue=queue.enqueue, upstream_factory=partial(CondaUpstream, egress=egress),
                    egress=egress, secrets=secret_box(rt.settings.home, rt.settings.secrets.key))
    mirroring.register_jobs(registry, env)
    maintenance.register(registry, rt.sessions, rt.blobs)
    cve_sync.register(registry, rt.sessions, rt.settings.cve)
    rt.extras["mirror_env"] = env
    rt.jobs = queue
    rt.scheduler = CronScheduler(queue, [lambda now: mirroring.due_runs(env, now), maintenance.due,
                                         cve_sync.due_source(rt.settings.cve)],
                                 tick_seconds=jobs_settings.tick_seconds)
