"""`conda-repo admin`: show and change the server's run-time settings (administrators only)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import yaml

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.domain.system_settings import SETTINGS, parse_setting
from taipan.errors import InvalidInput

_KNOWN = "; ".join(f"{name}: {spec.help}" for name, spec in SETTINGS.items())


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("admin", help="show or change the server settings (admins)",
                              description=f"Show or change the server's settings. Known settings: {_KNOWN}.")
    act = p.add_mutually_exclusive_group(required=True)
    act.add_argument("--show", action="store_true", help="print every setting")
    act.add_argument("--get", metavar="KEY", help="print one setting")
    act.add_argument("--set", nargs=2, action="append", metavar=("KEY", "VALUE"),
                     help="change a setting, e.g. --set user_channel_autocreate true (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.set_defaults(func=run)


def _value(key: str, text: str) -> Any:
    """Known settings are checked here (a typo fails before anything is sent); the server has the
    last word on the others."""
    if key in SETTINGS:
        return parse_setting(key, text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _print(ctx: Context, args: argparse.Namespace, data: Any) -> None:
    if args.json:
        ctx.out.json(data)
    elif isinstance(data, dict):
        ctx.out.yaml(data)
    else:
        ctx.out.line(json.dumps(data) if isinstance(data, bool | int | float) or data is None else str(data))


def run(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client
    if args.set:
        changes = {key: _value(key, text) for key, text in args.set}
        # As conda-repo-cli does: read all, change some, send all back.
        settings = {**client.system_settings(), **changes}
        result = client.update_system_settings(settings)
        for key in changes:
            ctx.out.success(f"{key} is now {json.dumps(result.get(key))}")
        return ExitCode.OK
    settings = client.system_settings()
    if args.get is not None:
        if args.get not in settings:
            raise InvalidInput(f"Unknown setting {args.get!r}",
                               f"Known settings: {', '.join(sorted(settings))}", code="unknown_setting")
        _print(ctx, args, settings[args.get])
    else:
        _print(ctx, args, settings)
    return ExitCode.OK
