"""`conda-repo auth`: list scopes; create, list and remove API tokens; show the current token."""

from __future__ import annotations

import argparse
import datetime as dt
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.session import ensure_session
from taipan.cli.tokens import write_private
from taipan.domain.permissions import KNOWN_SCOPES
from taipan.errors import Forbidden, InvalidInput, NotFound, Unauthenticated

T = TypeVar("T")
DEFAULT_MAX_AGE = 30 * 24 * 3600
# Far beyond any server's limit, yet small enough for datetime arithmetic (no OverflowError).
MAX_MAX_AGE = 100 * 365 * 24 * 3600


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("auth", help="manage API tokens",
                              description="Create, list and remove API tokens, and list the scopes a "
                                          "token may carry.")
    act = p.add_mutually_exclusive_group(required=True)
    act.add_argument("-x", "--list-scopes", action="store_true",
                     help="list the scopes you may put on a token (admin-only ones only for admins)")
    act.add_argument("-l", "--list", action="store_true", help="list your tokens")
    act.add_argument("-r", "--remove", nargs="+", metavar="ID", help="remove tokens by id")
    act.add_argument("-c", "--create", action="store_true", help="create a token")
    act.add_argument("-i", "--info", "--current-info", action="store_true", dest="info",
                     help="show the token in use")
    p.add_argument("-n", "--name", default=f"conda_repo:{socket.gethostname()}", help="name of the new token")
    p.add_argument("-s", "--scopes", action="append", default=[], metavar="SCOPE",
                   help="a scope of the new token (repeatable; default: all your scopes)")
    p.add_argument("--max-age", type=int, default=DEFAULT_MAX_AGE, metavar="SECONDS",
                   help="lifetime of the new token in seconds (default: 30 days)")
    p.add_argument("--out", metavar="FILE", help="write the new token to FILE instead of stdout")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def with_session(ctx: Context, call: Callable[[], T]) -> T:
    """Try with the stored API token; if the server wants a password session, ask for one."""
    try:
        return call()
    except (Unauthenticated, Forbidden):
        if ctx.client.session_token or ctx.token_given or not ctx.interactive:
            raise
    ensure_session(ctx)
    return call()


def _scopes_of(args: argparse.Namespace) -> list[str]:
    scopes = [s for arg in args.scopes for s in arg.replace(",", " ").split()]
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        raise InvalidInput(f"Unknown scope(s): {', '.join(unknown)}",
                           "`conda-repo auth --list-scopes` lists them")
    return scopes


def create(ctx: Context, args: argparse.Namespace) -> None:
    if not 0 < args.max_age <= MAX_MAX_AGE:
        raise InvalidInput(f"--max-age must be between 1 and {MAX_MAX_AGE} seconds",
                           "Give the lifetime in seconds, e.g. 86400 for a day")
    # Second resolution, in UTC: `--max-age 60` is a token that lasts 60 seconds.
    expires = (dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=args.max_age)).isoformat()
    scopes = _scopes_of(args)
    client = ctx.client
    if not scopes:
        ctx.out.warn("No scopes given: the token gets every scope you have")
        scopes = with_session(ctx, client.scopes)
    created: dict[str, Any] = with_session(ctx, lambda: client.create_token(args.name, expires, scopes))
    token = str(created["token"])
    # What the server stored is what `auth --list` will show: report that, not our own request.
    expires = str(created.get("expires_at") or expires)
    if args.out:
        write_private(Path(args.out).expanduser(), token + "\n")
        ctx.out.success(f"Token {args.name} (id {created.get('id')}, expires {expires}) written to {args.out}")
    elif args.json:
        ctx.out.json({"id": created.get("id"), "name": args.name, "expires_at": expires,
                      "scopes": created.get("scopes", scopes), "token": token})
    else:
        ctx.out.line(token)
        ctx.out.info(f"Token {args.name} created (id {created.get('id')}, expires {expires})")


def run(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client
    if args.list_scopes:
        scopes = with_session(ctx, client.scopes)
        ctx.out.json(scopes) if args.json else ctx.out.line("\n".join(scopes))
    elif args.list:
        tokens = with_session(ctx, client.tokens)
        if args.json:
            ctx.out.json(tokens)
        else:
            rows = [(t.get("id"), t.get("name"), t.get("type"), t.get("created_at"), t.get("expires_at"),
                     ", ".join(t.get("scopes") or [])) for t in tokens]
            ctx.out.table(["ID", "Name", "Type", "Created", "Expires", "Scopes"], rows)
    elif args.remove:
        # Check every id first: a typo in the last one must not leave the others half removed.
        known = {str(t.get("id")) for t in with_session(ctx, client.tokens)}
        unknown = [token_id for token_id in args.remove if token_id not in known]
        if unknown:
            raise NotFound(f"No token with id {', '.join(unknown)}; nothing was removed",
                           "`conda-repo auth --list` shows your tokens and their ids", code="token_not_found")
        for token_id in args.remove:
            with_session(ctx, lambda token_id=token_id: client.delete_token(token_id))
            ctx.out.success(f"Token {token_id} removed")
    elif args.create:
        create(ctx, args)
    else:
        info = client.token_info() or {}
        ctx.out.json(info) if args.json else ctx.out.yaml(info)
    return ExitCode.OK
