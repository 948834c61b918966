"""`conda-repo`: parse global options, find the command modules, run one, map failures to exit codes."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from taipan import __version__
from taipan.cli import commands
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode, exit_code_for
from taipan.cli.output import Output
from taipan.errors import Forbidden, TaipanError, Unauthenticated

RELOGIN_MESSAGE = "The action you are performing requires authentication, please sign in:"


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("global options")
    g.add_argument("-t", "--token", help="an API token, or the path of a file holding one")
    g.add_argument("-s", "--site", help="the site (from `conda-repo config`) to talk to")
    g.add_argument("-k", "--insecure", action="store_true", help="do not verify TLS certificates")
    g.add_argument("--disable-ssl-warnings", action="store_true", help=argparse.SUPPRESS)
    g.add_argument("-v", "--verbose", action="store_true", help="show debug messages and HTTP requests")
    g.add_argument("-q", "--quiet", action="store_true", help="show only warnings and errors")
    g.add_argument("--show-traceback", action="store_true", help="show the traceback of a failure")
    g.add_argument("-V", "--version", action="version",
                   version=f"%(prog)s Command line client (version {__version__})")


# Also accepted after the command (`conda-repo channel --list -v`), where a command does not use the
# same option string itself (upload's -t and auth's -s mean something else there).
TRAILING_GLOBALS: list[tuple[tuple[str, ...], dict[str, object]]] = [
    (("-t", "--token"), {"help": "an API token, or the path of a file holding one"}),
    (("-s", "--site"), {"help": "the site (from `conda-repo config`) to talk to"}),
    (("-k", "--insecure"), {"action": "store_true", "help": "do not verify TLS certificates"}),
    (("-v", "--verbose"), {"action": "store_true", "help": "show debug messages and HTTP requests"}),
    (("-q", "--quiet"), {"action": "store_true", "help": "show only warnings and errors"}),
    (("--show-traceback",), {"action": "store_true", "help": "show the traceback of a failure"}),
]


def _add_trailing_globals(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("global options (also accepted before the command)")
    for flags, kwargs in TRAILING_GLOBALS:
        free = tuple(f for f in flags if f not in parser._option_string_actions)
        if free and free[-1].startswith("--"):
            # SUPPRESS: when not given here, the value given before the command is kept.
            group.add_argument(*free, default=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]


def load_command_modules() -> list[str]:
    """Every module in taipan.cli.commands with an add_parser(); new ones need no registration."""
    names = []
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        names.append(f"{commands.__name__}.{info.name}")
    return names


def build_parser(prog: str = "conda-repo") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Manage channels, packages and tokens on a Taipan server.",
        epilog=f"Run `{prog} COMMAND --help` for the options of a command.")
    _add_global_options(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in load_command_modules():
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a broken plug-in command must not take the whole CLI down
            print(f"warning: the command module {name} could not be loaded: {exc}", file=sys.stderr)
            continue
        add_parser = getattr(module, "add_parser", None)
        if callable(add_parser):
            add_parser(subparsers)
    for sub in set(subparsers.choices.values()):
        _add_trailing_globals(sub)
    return parser


def _run(ctx: Context) -> int:
    result = ctx.args.func(ctx, ctx.args)
    return int(result) if result is not None else ExitCode.OK


def _run_with_relogin(ctx: Context) -> int:
    try:
        return _run(ctx)
    except Unauthenticated:
        if ctx.token_given or not ctx.interactive or getattr(ctx.args, "manages_auth", False):
            raise
    # Like conda-repo-cli: sign in once, then retry the command with the fresh token.
    from taipan.cli.session import login

    ctx.out.info(RELOGIN_MESSAGE)
    login(ctx)
    return _run(ctx)


# The server's hints speak HTTP (X-Auth headers, GET /api/...); at the terminal, name the command.
CLI_HINTS = {
    "authentication_required": "Sign in with `conda-repo login`, or pass a token with -t",
    "invalid_token": "Sign in again with `conda-repo login` (the stored token was removed or replaced)",
    "token_expired": "Sign in again with `conda-repo login`",
    "token_not_found": "`conda-repo auth --list` shows your tokens and their ids",
}
TOKEN_OPTION_HINTS = {
    "invalid_token": "The token given with -t was removed or never existed; create one with "
                     "`conda-repo auth --create`",
    "token_expired": "The token given with -t has expired; create one with `conda-repo auth --create`",
}


def _report(ctx: Context, err: TaipanError) -> int:
    if ctx.token_given and isinstance(err, Unauthenticated | Forbidden):
        hint = TOKEN_OPTION_HINTS.get(str(err.code), err.hint or "Check the token given with -t")
        ctx.out.error(f"The provided token does not allow you to perform this operation: {err.message}", hint)
    else:
        ctx.out.error(err.message, CLI_HINTS.get(str(err.code), err.hint))
    return exit_code_for(err)


def main(argv: Sequence[str] | None = None, prog: str = "conda-repo") -> int:
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else ExitCode.USAGE
    if args.verbose:
        # Our own request log only: httpx/httpcore debug output would drown it.
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        logging.getLogger("taipan").addHandler(handler)
        logging.getLogger("taipan").setLevel(logging.DEBUG)
    out = Output(quiet=args.quiet, verbose=args.verbose, prog=prog)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    ctx = Context(args, out)
    try:
        return _run_with_relogin(ctx)
    except TaipanError as err:
        if args.show_traceback:
            traceback.print_exc()
        return _report(ctx, err)
    except KeyboardInterrupt:
        out.error("Interrupted")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`conda-repo ... | head`): not an error. Point stdout at devnull so
        # the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.OK
    except Exception as exc:
        if args.show_traceback:
            traceback.print_exc()
        else:
            out.error(f"Unexpected error: {type(exc).__name__}: {exc}",
                      "Run again with --show-traceback and report the output")
        return ExitCode.ERROR
    finally:
        ctx.close()


def entry() -> None:
    sys.exit(main())
