"""The ASGI application: create_app(runtime) wires routers, error mapping and package serving."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from taipan import __version__
from taipan.runtime import Runtime
from taipan.web import errors, observability, openapi, ui
from taipan.web.api import account, channels, cves, maintenance, mirrors, reports, system, uploads
from taipan.web.keep_fresh import KeepFresh
from taipan.web.limits import BodyLimit
from taipan.web.repo.app import FastPath, RepoApp, document

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


class TaipanApp(FastAPI):
    """The application: package serving's answers from memory (``FastPath``) come first, before
    FastAPI's own layers (its telemetry check, Starlette's error and exception middleware) and ours."""

    fast: FastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        fast = self.fast
        if fast is not None and scope["type"] == "http" and await fast(scope, receive, send):
            return
        await super().__call__(scope, receive, send)


def create_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        fresh = KeepFresh(runtime, runtime.settings.server.keep_fresh_seconds)
        fresh.start()
        try:
            yield
        finally:
            fresh.stop()
            runtime.close()
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


def app_from_env() -> FastAPI:
    """uvicorn factory for `taipan serve`: one runtime per worker process, from the environment."""
    from taipan.runtime import build_runtime, tune_process
    from taipan.settings import Settings

    settings = Settings()
    tune_process(settings)
    return create_app(build_runtime(settings))
