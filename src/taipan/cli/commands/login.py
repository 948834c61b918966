"""`conda-repo login`, `logout` and `whoami`."""

from __future__ import annotations

import argparse

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.session import login
from taipan.cli.tokens import load_token, remove_token
from taipan.errors import TaipanError, Unauthenticated


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

    p = subparsers.add_parser("logout", help="revoke the stored API token and forget it",
                              description="Revoke the stored API token on the server, then remove its "
                                          "token files. Works offline too: the files are removed and a "
                                          "warning says the token stays valid on the server.")
    p.add_argument("-f", "--force", action="store_true", help="remove the token files even if not logged in")
    p.set_defaults(func=run_logout, manages_auth=True)

    p = subparsers.add_parser("whoami", help="show the signed-in account and its permissions",
                              description="Show your username, user ID, default channel, roles and the "
                                          "permissions (scopes) of the credential in use.")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.set_defaults(func=run_whoami)


def run_login(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.config.get("oauth2"):
        # Taipan has no external identity provider yet; the password flow is the one that works.
        ctx.out.warn("oauth2 is set, but this server signs in with a username and password")
    login(ctx, args.username, args.password, args.hostname, args.force_scopes)
    return ExitCode.OK


def run_logout(ctx: Context, args: argparse.Namespace) -> int:
    token = load_token(ctx.url)
    if token is None and not args.force:
        ctx.out.info("You are not logged in")
        return ExitCode.OK
    if token is not None:
        revoke_on_server(ctx, token)
    remove_token(ctx.url)
    ctx.out.success("logout successful")
    return ExitCode.OK


def revoke_on_server(ctx: Context, token: str) -> None:
    """Revoke the stored token (not a -t one); a user can always log out locally, even offline."""
    client = ctx.client
    client.token = token
    try:
        client.logout()
    except Unauthenticated:
        pass  # already revoked or expired: nothing left to do on the server
    except TaipanError as err:
        ctx.out.warn(f"Could not revoke the token on the server ({err.message}); it stays valid until it "
                     "expires or is removed with `conda-repo auth --remove ID`. The local copies are removed.")


def run_whoami(ctx: Context, args: argparse.Namespace) -> int:
    if ctx.client.token is None:
        raise TaipanError("You are not logged in", "Run `conda-repo login`", code="not_logged_in")
    account = ctx.client.account()
    ctx.out.json(account) if args.json else ctx.out.yaml(account)
    return ExitCode.OK
