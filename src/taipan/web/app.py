"""The ASGI application: create_app(runtime) wires routers, error mapping and package serving."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from taipan import __version__
from taipan.runtime import Runtime
from taipan.web import errors, observability, openapi, ui
from taipan.web.api import account, channels, cves, maintenance, mirrors, reports, system, uploads
from taipan.web.keep_fresh import KeepFresh
from taipan.web.limits import BodyLimit
from taipan.web.repo.app import FastPath, RepoApp, document
from taipan.web.rsgi import RSGIApp, nothing

# Seconds a stopping server process may spend after its lifespan ended (joining request threads
# that are still busy, e.g. compressing a large index) before it exits regardless.
EXIT_GRACE = 3.0


def _exit_watchdog(seconds: float) -> None:
    """Make sure the process ends soon after shutdown: the interpreter joins every non-daemon
    thread at exit, and a request thread may still be busy; the operator asked it to stop."""
    def bail() -> None:
        logging.getLogger(__name__).warning("threads still busy %.0f s after shutdown; exiting", seconds)
        os._exit(0)

    timer = threading.Timer(seconds, bail)
    timer.daemon = True
    timer.start()


class _Closing:
    """The runtime is closed once: by the lifespan's shutdown, or by the stop deadline below."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.lock = threading.Lock()
        self.done = False

    def close(self) -> bool:
        """Close the runtime unless that was done already; True when this call did it."""
        with self.lock:
            if self.done:
                return False
            self.done = True
        self.runtime.close()
        return True


def _stop_deadline(closing: _Closing, seconds: float) -> None:
    """Once the process is asked to stop (SIGTERM, SIGINT), make sure that what the runtime holds is
    flushed within ``seconds`` plus the exit grace, even if the server never gets to the lifespan's
    shutdown: granian only runs it once every connection is done, and a slow download or a client
    that never finishes its request head would keep it waiting until its parent kills the worker
    (losing the downloads not yet written). uvicorn cancels what is still running after its
    graceful timeout and runs the lifespan's shutdown itself, which then wins the race.

    The signal handlers the server installed stay in charge: this one runs after the previous one
    (asyncio's loop is woken through its wakeup fd whatever the Python-level handler is)."""
    import signal

    def deadline() -> None:
        _exit_watchdog(EXIT_GRACE)  # in case closing blocks
        if closing.close():
            logging.getLogger(__name__).warning(
                "requests still open %.0f s after the stop signal; the runtime was closed and the process exits",
                seconds)
            os._exit(0)

    armed: list[threading.Timer] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)
        if not callable(previous):  # no server handles it: leave the default (or ignoring) alone
            continue

        def on_signal(number: int, frame: Any, previous: Callable[[int, Any], Any] = previous) -> None:
            if not armed:
                timer = threading.Timer(seconds, deadline)
                timer.daemon = True
                armed.append(timer)
                timer.start()
            previous(number, frame)

        try:
            signal.signal(signum, on_signal)
        except ValueError:  # not the main thread (an in-process client): the server stops it
            return


class TaipanApp(FastAPI):
    """The application: package serving's answers from memory (``FastPath``) come first, before
    FastAPI's own layers (its telemetry check, Starlette's error and exception middleware) and ours."""

    fast: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast
        if fast is not None and scope["type"] == "http" and await fast(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def create_app(runtime: Runtime) -> TaipanApp:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        closing = _Closing(runtime)
        if runtime.settings.server.exit_watchdog:
            _stop_deadline(closing, runtime.settings.server.graceful_shutdown + 1.0)
        fresh = KeepFresh(runtime, runtime.settings.server.keep_fresh_seconds)
        fresh.start()
        try:
            yield
        finally:
            fresh.stop()
            closing.close()
            if runtime.settings.server.exit_watchdog:
                _exit_watchdog(EXIT_GRACE)

    app = TaipanApp(title="Taipan", version=__version__, lifespan=lifespan, docs_url="/docs",
                  openapi_url="/api/openapi.json")
    app.state.runtime = runtime
    errors.install(app)
    app.include_router(account.router, prefix="/api")
    app.include_router(channels.router, prefix="/api")
    app.include_router(uploads.router, prefix="/api")
    app.include_router(system.router, prefix="/api")
    app.include_router(maintenance.router, prefix="/api")
    app.include_router(reports.router, prefix="/api")
    app.include_router(cves.router, prefix="/api")
    app.include_router(ui.router)
    mirrors.install(app, runtime)

    @app.get("/api/system/version", tags=["system"])
    def version() -> dict[str, str]:
        return {"version": __version__}

    app.include_router(observability.router)
    document(app)  # package serving's URLs that also take uploads
    # The published schema is completed from whatever routes the app has when it is first asked for.
    openapi.install(app)
    server = runtime.settings.server
    app.add_middleware(BodyLimit, upload=server.max_upload_size, json=server.max_body_size,
                       login=server.max_login_body_size)
    # Outermost: package serving does not pay for the API's routing and middleware.
    app.add_middleware(RepoApp)
    metrics = app.state.metrics = observability.Metrics(runtime)
    runtime.hooks.on_publish.append(metrics.observe_publish)
    runtime.hooks.on_download.append(metrics.count_download)
    app.add_middleware(observability.ObservabilityMiddleware, metrics=metrics)
    app.fast = FastPath(runtime, metrics)
    return app


def app_from_env() -> ASGIApp:
    """The factory `taipan serve` hands to uvicorn, called in each worker process: one runtime per
    process, from the environment, and the process's memory tuning."""
    return _from_env()[0]


def rsgi_app_from_env() -> RSGIApp:
    """The same for granian, on its native interface (web/rsgi.py). Its answers from memory skip the
    ASGI layer too (they do not depend on the client's address or scheme, which a trusted front
    proxy's forwarding headers set on the ASGI path)."""
    app, taipan = _from_env()
    return RSGIApp(app, taipan.fast.rsgi if taipan.fast is not None else None)


def _from_env() -> tuple[ASGIApp, TaipanApp]:
    from taipan.runtime import build_runtime, freeze_startup_objects, tune_process
    from taipan.settings import Settings

    settings = Settings()
    die_with_supervisor()
    tune_process(settings)
    taipan = create_app(build_runtime(settings))
    app = forwarded(taipan, settings.server.forwarded_allow_ips)
    if app is not taipan and taipan.fast is not None:
        taipan.fast.forwarded = forwarded(nothing, settings.server.forwarded_allow_ips)
    freeze_startup_objects()
    return app, taipan


# Set by `taipan serve` to its own pid when its HTTP server runs the app in worker processes.
SUPERVISOR_ENV = "TAIPAN_SERVE_SUPERVISOR"


def die_with_supervisor() -> None:
    """In a worker process of `taipan serve` (granian's, or uvicorn's with --workers), die at once
    when the supervising process dies without stopping it (SIGKILL, a crash): a server killed is then
    gone whole, as one uvicorn process is, instead of leaving workers that keep serving and running
    jobs unsupervised. A stop (SIGTERM) goes through the supervisor, which stops its workers first.
    Linux only (prctl PR_SET_PDEATHSIG)."""
    supervisor = os.environ.get(SUPERVISOR_ENV, "")
    if not supervisor.isdigit() or int(supervisor) == os.getpid():
        return  # not a worker (uvicorn with one process serves in the process `taipan serve` is)
    if int(supervisor) != os.getppid():  # a worker whose supervisor died while it was starting
        os._exit(1)
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return
    pr_set_pdeathsig = 1
    prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != int(supervisor):  # it died before the line above
        os._exit(1)


def forwarded(app: ASGIApp, trusted: str) -> ASGIApp:
    """The client address and scheme a trusted front proxy names (X-Forwarded-For, -Proto), put in
    the scope before anything reads it, the fast path included: downloads record it and sign-in
    throttling counts it. Any other peer's forwarding headers are ignored. uvicorn's own middleware,
    applied here for both servers (granian has no such option; uvicorn's is switched off)."""
    if not trusted.strip():
        return app
    from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

    return ProxyHeadersMiddleware(app, trusted_hosts=trusted)  # type: ignore[arg-type]
