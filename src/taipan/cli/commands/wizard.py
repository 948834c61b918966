"""`conda-repo wizard`: point conda at this server (channel_alias, default_channels, channels)."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from taipan.cli import condarc
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import items_of
from taipan.errors import TaipanError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("wizard", help="configure .condarc for this server",
                              description="Set channel_alias, default_channels and channels in a .condarc "
                                          "(backed up first), or bring the backup back with --restore.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--file", metavar="PATH", help="the .condarc file to change")
    where.add_argument("--system", action="store_true", help="the .condarc of the conda installation")
    where.add_argument("--env", action="store_true", help="the .condarc of the active conda environment")
    p.add_argument("--restore", action="store_true", help="restore the file saved by the last run")
    p.set_defaults(func=run)


def _channel_table(ctx: Context, channels: list[dict[str, Any]]) -> None:
    rows = [(c.get("name"), "✔" if (c.get("mirror_count") or 0) > 0 else "", c.get("privacy"),
             ", ".join(str(o) for o in c.get("owners") or [])) for c in channels]
    ctx.out.info("The following channels are available:")
    # On stderr with the prompts: the wizard is a conversation, not data for a pipe.
    ctx.out.table(["Name", "Mirror", "Privacy", "Owners"], rows, stderr=True)


def ask_channels(ctx: Context, prompt: str, known: set[str], required: bool) -> list[str]:
    """Ask until the answer names at least one known channel (or may be empty); warn about the rest."""
    while True:
        chosen: list[str] = []
        for name in ctx.ask(prompt).split():
            if name not in known:
                ctx.out.warn(f"Channel {name!r} does not exist on the server; it is not added")
            elif name not in chosen:
                chosen.append(name)
        if chosen or not required:
            return chosen
        ctx.out.error("At least one existing channel is needed for default_channels",
                      "Pick names from the table")


def run(ctx: Context, args: argparse.Namespace) -> int:
    path = condarc.wizard_condarc_path(args.file, args.system, args.env)
    if args.restore:
        backup = condarc.restore(path)
        ctx.out.success(f"Restored {path} from {backup}")
        return ExitCode.OK
    host = condarc.channel_alias(ctx.url).removesuffix("/api/repo")
    ctx.out.info("Conda configuration wizard.")
    ctx.out.info(f"This wizard will configure your CondaRC file using channels from {host}\n")
    ctx.out.info(f"The CondaRC path is {path}\n")
    channels = items_of(ctx.client.channels())
    if not channels:
        raise TaipanError("The server has no channel you can see", "Create one with "
                          "`conda-repo channel --create NAME`", code="no_channels")
    _channel_table(ctx, channels)
    known = {str(c.get("name")) for c in channels}
    defaults = ask_channels(ctx, "\nProvide a space-separated list of channels to set as default_channels\n"
                                 "It is common to add mirror channels here.\n: ", known, required=True)
    extra = ask_channels(ctx, '\nIf you wish to add channels to the "channels" list\n'
                              "provide a space-separated list. You may leave this blank.\n: ", known,
                         required=False)
    settings = condarc.wizard_settings(ctx.url, defaults, extra)
    ctx.out.info("The following Conda configuration will be applied")
    ctx.out.info(yaml.safe_dump(settings, sort_keys=False, default_flow_style=False, indent=2).rstrip())
    if not ctx.confirm(f"Confirm changes to {path}\n(The current condarc file will be archived) [Y, n]: "):
        ctx.out.info("Nothing was changed")
        return ExitCode.OK
    backup = condarc.backup_path(path)
    ctx.out.info(f"Backing up your current condarc file to {backup}")
    condarc.apply_settings(path, settings)
    where = f" --file {args.file}" if args.file else " --system" if args.system else " --env" if args.env else ""
    ctx.out.success(f"{path} updated; `conda-repo wizard --restore{where}` brings the old file back")
    return ExitCode.OK
