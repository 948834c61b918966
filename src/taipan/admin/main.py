"""`taipan`: the server command — serve, db upgrade, user management."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable

from taipan import __version__
from taipan.errors import TaipanError
from taipan.settings import Settings

# Other modules add subcommands here (e.g. the job worker): name -> (help, add_arguments, run).
EXTRA_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                                Callable[[argparse.Namespace, Settings], int]]] = {}


def prepare(settings: Settings) -> str | None:
    """Migrate the database and bootstrap the admin; return a generated password, if any."""
    from taipan.db.migrate import upgrade
    from taipan.runtime import build_runtime, make_home, tighten_storage
    from taipan.services import accounts

    make_home(settings)
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    try:
        tighten_storage(rt)
        with rt.sessions() as db:
            generated = accounts.bootstrap_admin(db, settings.admin_username, settings.admin_password)
            db.commit()
    finally:
        rt.engine.dispose()
    return generated


def prepare_apart(settings: Settings) -> str | None:
    """``prepare`` in a forked child, so that the server process never imports the migration code
    (Alembic and its templates: ~10 MB that a server never uses again). If the child fails, it runs
    here, so that its error is reported as usual."""
    if not hasattr(os, "fork"):
        return prepare(settings)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read_end)
            generated = prepare(settings)
            os.write(write_end, (generated or "").encode())
            code = 0
        except BaseException:  # noqa: BLE001 - reported by the parent's own attempt
            pass
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        answer = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return prepare(settings)
    return answer or None


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    server = args.server or settings.server.http_server
    if server == "granian":
        _require_granian()
    generated = prepare_apart(settings)
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    print(f"Taipan {__version__} — data in {settings.home}", file=sys.stderr)
    if generated:
        print(f"Created the admin account '{settings.admin_username}' with password: {generated}\n"
              "  (shown once; change it with `taipan user passwd admin`)", file=sys.stderr)
    print(f"Log in with:  conda-repo config --set sites.taipan.url {url}/api && "
          f"conda-repo config --set default_site taipan && conda-repo login --username "
          f"{settings.admin_username}\nWeb UI:  {url}/ui/\nConda channels:  {url}/api/repo/<channel>",
          file=sys.stderr)
    os.environ.setdefault("TAIPAN_HOME", str(settings.home))
    # Each server process exits soon after SIGTERM, whatever requests are still in flight.
    os.environ["TAIPAN_SERVER__EXIT_WATCHDOG"] = "true"
    # Worker processes die with this one (web/app.py: die_with_supervisor).
    os.environ["TAIPAN_SERVE_SUPERVISOR"] = str(os.getpid())
    if server == "granian":
        return _serve_granian(args, settings, host, port)
    return _serve_uvicorn(args, settings, host, port)


def _serve_uvicorn(args: argparse.Namespace, settings: Settings, host: str, port: int) -> int:
    import uvicorn

    from taipan.admin.logs import log_config

    uvicorn.run("taipan.web.app:app_from_env", factory=True, host=host, port=port,
                # Levels come from log_config alone: uvicorn's log_level would also lower the access
                # logger to --log-level, silencing --access-log.
                workers=args.workers or settings.server.workers, log_level=None,
                log_config=log_config(args.log_level, json_lines=settings.observability.json_logs),
                access_log=args.access_log, timeout_graceful_shutdown=settings.server.graceful_shutdown,
                # The app reads X-Forwarded-* itself, for both servers (web/app.py: forwarded).
                proxy_headers=False, **_http_protocol(settings))
    return 0


# granian's own allocations (response bodies on their way to the socket, connection buffers) are
# jemalloc's, which keeps freed pages for 10 s and returns them only when it is next used: a burst of
# large answers (32 clients of a 2.4 MB gzip repodata.json) left a worker ~50 MB larger for good.
# Returning dirty pages after 1 s costs no measurable CPU per request there (benchmarks/README.md,
# Memory per server process); returning them at once (0) doubled it. An operator's own setting wins.
GRANIAN_ALLOCATOR = "dirty_decay_ms:1000,muzzy_decay_ms:0"


def _require_granian() -> None:
    # Read when granian's library first allocates (in this process, whose workers are forks of it).
    os.environ.setdefault("_RJEM_MALLOC_CONF", GRANIAN_ALLOCATOR)
    try:
        import granian  # noqa: F401
    except ImportError as exc:
        raise TaipanError("granian is not installed", 'pip install "taipan[server]" (granian is part of it), '
                          "or use --server uvicorn", code="missing_dependency") from exc


def _serve_granian(args: argparse.Namespace, settings: Settings, host: str, port: int) -> int:
    """granian, the default: artifact files are sent by the server itself, and its HTTP layer (Rust,
    hyper) costs less per request than uvicorn's (benchmarks/README.md, Fixed per-request cost). It
    runs the application through its native interface (web/rsgi.py) unless told ASGI. Its bounds
    (see docs/configuration.md): HTTP/1.1 only, as on uvicorn; the request line and headers must fit
    in ``server.max_header_bytes`` (hyper answers 431 and closes; a URI too long on its own may get
    414); at most 100 header fields (hyper's fixed limit, the default of ``server.max_headers``)."""
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels

    from taipan.admin.logs import granian_log_config

    server = settings.server
    if server.max_headers != 100:
        print(f"note: granian allows 100 request header fields (hyper's fixed limit); TAIPAN_SERVER__MAX_HEADERS="
              f"{server.max_headers} applies on uvicorn only (--server uvicorn)", file=sys.stderr)
    level = "debug" if args.log_level == "trace" else args.log_level
    rsgi = server.granian_interface == "rsgi"
    Granian("taipan.web.app:rsgi_app_from_env" if rsgi else "taipan.web.app:app_from_env", address=host, port=port,
            interface=Interfaces.RSGI if rsgi else Interfaces.ASGI, factory=True,
            workers=args.workers or server.workers, http=HTTPModes.http1,
            http1_settings=HTTP1Settings(max_buffer_size=max(8192, server.max_header_bytes)),
            log_level=LogLevels(level), log_access=args.access_log,
            log_dictconfig=granian_log_config(args.log_level, json_lines=settings.observability.json_logs),
            # A worker flushes and exits within graceful_shutdown + 1 s of the signal, plus its exit
            # grace of 3 s (web/app.py: _stop_deadline, EXIT_GRACE). It is killed only if it did not,
            # 10 s after that: a loaded machine can delay those timers' threads by seconds, and a kill
            # then would lose the downloads the worker was writing (seen once in CI with a 1 s margin).
            workers_kill_timeout=int(server.graceful_shutdown) + 1 + 3 + 10).serve()
    return 0


def _http_protocol(settings: Settings) -> dict[str, object]:
    """uvicorn's HTTP protocol with bounded request headers (see taipan.admin.http)."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return {"http": "h11", "h11_max_incomplete_event_size": settings.server.max_header_bytes}
    return {"http": "taipan.admin.http:BoundedHttpToolsProtocol"}


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    from taipan.db.migrate import upgrade

    upgrade(settings.database_url, args.revision)
    print(f"Database at revision {args.revision}", file=sys.stderr)
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.password:
        return args.password
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise TaipanError("The passwords differ", "Type the same password twice", code="password_mismatch")
    return first


def cmd_user(args: argparse.Namespace, settings: Settings) -> int:
    from taipan.db.migrate import upgrade
    from taipan.runtime import build_runtime
    from taipan.services import accounts

    upgrade(settings.database_url)
    rt = build_runtime(settings)
    try:
        with rt.sessions() as db:
            if args.action == "create":
                role = "admin" if args.admin else "user"
                accounts.create_user(db, args.username, _password(args), role=role)
                print(f"Created user {args.username}", file=sys.stderr)
            elif args.action == "list":
                for u in accounts.list_users(db):
                    print(f"{u.username}\t{u.role}\t{u.created_at:%Y-%m-%d}")
            elif args.action == "passwd":
                accounts.set_password(db, args.username, _password(args))
                print(f"Password of {args.username} changed", file=sys.stderr)
            elif args.action == "delete":
                accounts.delete_user(db, args.username)
                print(f"Deleted user {args.username}", file=sys.stderr)
            db.commit()
    finally:
        rt.engine.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="taipan", description="Taipan package server")
    parser.add_argument("--version", action="version", version=f"taipan {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the server (migrates and bootstraps an admin first)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--log-level", default="warning",
                       choices=["critical", "error", "warning", "info", "debug", "trace"])
    serve.add_argument("--access-log", action="store_true")
    serve.add_argument("--server", choices=("uvicorn", "granian"),
                       help="the HTTP server (default: TAIPAN_SERVER__HTTP_SERVER, else granian)")
    serve.set_defaults(func=cmd_serve)
    db = sub.add_parser("db", help="database maintenance")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="apply the migrations")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=cmd_db)
    user = sub.add_parser("user", help="manage user accounts")
    usub = user.add_subparsers(dest="action", required=True)
    for name, helptext in (("create", "create a user"), ("passwd", "set a password"),
                           ("delete", "delete a user")):
        p = usub.add_parser(name, help=helptext)
        p.add_argument("username")
        if name != "delete":
            p.add_argument("--password", help="the password (else prompted, or read from stdin)")
        if name == "create":
            p.add_argument("--admin", action="store_true", help="give the admin role")
        p.set_defaults(func=cmd_user)
    usub.add_parser("list", help="list users").set_defaults(func=cmd_user)
    for name, (helptext, add_args, run) in EXTRA_COMMANDS.items():
        p = sub.add_parser(name, help=helptext)
        add_args(p)
        p.set_defaults(func=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Everything the server writes (database, blobs, spool files, keys) is owner-only.
    os.umask(0o077)
    _load_plugins()
    args = build_parser().parse_args(argv)
    try:
        return args.func(args, Settings())
    except TaipanError as exc:
        print(f"error: {exc.message}" + (f"\nhint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _load_plugins() -> None:
    """Import the optional admin modules that register EXTRA_COMMANDS (e.g. the job worker)."""
    import importlib
    import pkgutil

    import taipan.admin as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("main", "__init__"):
            importlib.import_module(f"taipan.admin.{mod.name}")


if __name__ == "__main__":
    sys.exit(main())
