"""`conda-repo login`, `logout` and `whoami`."""

from __future__ import annotations

import argparse

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.session import login
from taipan.cli.tokens import load_token, remove_token
from taipan.errors import TaipanError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("login", help="sign in and store an API token",
                              description="Sign in with a username and password. The API token is stored "
                                          "where conda finds it for the site's /api/repo channels.")
    p.add_argument("--username", help="the username (asked for when missing)")
    p.add_argument("--password", help="the password (asked for when missing; prefer the prompt)")
    p.add_argument("--hostname", help="name this machine's token after HOSTNAME (default: this host)")
    p.add_argument("--force-scopes", action="store_true",
                   help="recreate the token with all the scopes the account has now")
    p.set_defaults(func=run_login, manages_auth=True)

    p = subparsers.add_parser("logout", help="forget the stored API token",
                              description="Remove the stored token files of the site (no server call).")
    p.add_argument("-f", "--force", action="store_true", help="remove the token files even if not logged in")
    p.set_defaults(func=run_logout, manages_auth=True)

    p = subparsers.add_parser("whoami", help="show the signed-in account")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.set_defaults(func=run_whoami)


def run_login(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.config.get("oauth2"):
        # Taipan has no external identity provider yet; the password flow is the one that works.
        ctx.out.warn("oauth2 is set, but this server signs in with a username and password")
    login(ctx, args.username, args.password, args.hostname, args.force_scopes)
    return ExitCode.OK


def run_logout(ctx: Context, args: argparse.Namespace) -> int:
    if load_token(ctx.url) is None and not args.force:
        ctx.out.info("You are not logged in")
        return ExitCode.OK
    remove_token(ctx.url)
    ctx.out.success("logout successful")
    return ExitCode.OK


def run_whoami(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.client.token is None:
        raise TaipanError("You are not logged in", "Run `conda-repo login`", code="not_logged_in")
    account = ctx.client.account()
    ctx.out.json(account) if args.json else ctx.out.yaml(account)
    return ExitCode.OK
