"""Signing in (wire protocol §1.3): password -> session token -> a rotated or new API token on disk."""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from taipan.cli.context import Context
from taipan.cli.tokens import store_token
from taipan.errors import InvalidInput, NotFound, TaipanError, Unauthenticated

MAX_ATTEMPTS = 3
TOKEN_LIFETIME = dt.timedelta(days=30)


def cli_token_name(hostname: str | None = None) -> str:
    return f"repo-cli-token-{hostname or socket.gethostname()}"


def expiry_date(lifetime: dt.timedelta = TOKEN_LIFETIME) -> str:
    return (dt.date.today() + lifetime).isoformat()


def password_session(ctx: Context, username: str | None = None,
                     password: str | None = None) -> dict[str, Any]:
    """POST /auth/login, asking for what is missing; up to three tries when the password was asked for."""
    client = ctx.client
    client.token = None  # the login call must not carry an old, maybe expired, API token
    attempts = 1 if password else MAX_ATTEMPTS
    typed = ""  # a username typed at the prompt is asked again after a failure (it may be the typo)
    for attempt in range(1, attempts + 1):
        user = username or ctx.ask(f"Username [{typed}]: " if typed else "Username: ").strip() or typed
        if not user:
            raise InvalidInput("A username is required", "Pass --username or type it at the prompt")
        secret = password if password else ctx.ask_secret("Password: ")
        try:
            answer = client.login(user, secret)
        except Unauthenticated as exc:
            if attempt == attempts:
                raise Unauthenticated(exc.message or "Invalid username or password",
                                      exc.hint or "Check the username and password") from exc
            ctx.out.error(exc.message or "Invalid username or password", "Try again")
            typed = "" if username else user
            continue
        client.session_token = answer["token"]
        answer.setdefault("username", user)
        return answer
    raise AssertionError("unreachable")


def issue_cli_token(ctx: Context, hostname: str | None = None, force_scopes: bool = False) -> str:
    """Rotate this machine's CLI token, or create it with every scope the account may grant."""
    client = ctx.client
    name = cli_token_name(hostname)
    existing = next((t for t in client.tokens() if t.get("name") == name), None)
    if existing is not None and not force_scopes:
        return str(client.rotate_token(str(existing["id"]))["token"])
    if existing is not None:
        try:
            client.delete_token(str(existing["id"]))
        except NotFound:
            pass  # already gone: creating it afresh is all we wanted
    created = client.create_token(name, expiry_date(), client.scopes())
    return str(created["token"])


def login(ctx: Context, username: str | None = None, password: str | None = None,
          hostname: str | None = None, force_scopes: bool = False) -> dict[str, Any]:
    answer = password_session(ctx, username, password)
    token = issue_cli_token(ctx, hostname, force_scopes)
    store_token(ctx.url, token)
    ctx.client.token = token
    roles = [str(r).lower() for r in answer.get("roles") or []]
    if "admin" in roles:
        ctx.out.success("login as ADMIN successful")
    else:
        ctx.out.success(f"login as {answer['username']} successful")
    return answer


def ensure_session(ctx: Context) -> None:
    """Token management needs a password session; ask for one when a person is there to answer."""
    if ctx.client.session_token:
        return
    if not ctx.interactive:
        raise TaipanError("Managing tokens needs a password sign-in", "Run this command in a terminal, "
                          "or run `conda-repo login` first in the same session", code="not_logged_in")
    ctx.out.info("This action needs your password:")
    saved = ctx.client.token
    password_session(ctx)
    ctx.client.token = saved
