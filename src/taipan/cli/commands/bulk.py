"""`conda-repo copy`, `move` and `remove`: bulk actions on packages or single files of a channel."""

from __future__ import annotations

import argparse
from typing import Any

from taipan.cli.commands.channel import FAMILIES
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import all_items
from taipan.cli.specs import PackageSpec, matches
from taipan.domain.names import split_channel_path
from taipan.errors import InvalidInput, NotFound, TaipanError

SPEC_HELP = "CHANNEL[/SUBCHANNEL]::PACKAGE[/VERSION[/FILENAME]]"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    for name, verb in (("copy", "copy"), ("move", "move")):
        p = subparsers.add_parser(name, help=f"{verb} packages to another channel",
                                  description=f"{verb.capitalize()} packages (or some of their files) to "
                                              "the channel given with -d.")
        p.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP)
        p.add_argument("-d", "--destination", required=True, metavar="CHANNEL",
                       help="target CHANNEL or CHANNEL/SUBCHANNEL")
        p.add_argument("--family", default="conda", choices=FAMILIES, help="artifact family (default: conda)")
        p.set_defaults(func=run, action_name=name)
    p = subparsers.add_parser("remove", help="delete packages from a channel",
                              description="Delete packages (or some of their files) from a channel.")
    p.add_argument("specs", nargs="+", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--family", default="conda", choices=FAMILIES, help="artifact family (default: conda)")
    p.set_defaults(func=run, action_name="delete")


def bulk_items(ctx: Context, spec: PackageSpec, family: str) -> list[dict[str, Any]]:
    """The whole package, or, with a version or file name, exactly the files that match."""
    assert spec.package is not None
    package = spec.package
    if not (spec.version or spec.filename):
        # Asking for one file checks that the channel and the package exist (a NotFound otherwise).
        ctx.client.files(spec.channel_path, family, package, 0, 1)
        return [{"name": package, "family": family}]
    files = [f for f in all_items(lambda o, n: ctx.client.files(spec.channel_path, family, package, o, n))
             if matches(spec, f)]
    if not files:
        raise NotFound(f"No file of {spec} was found", f"`conda-repo channel --list-files {spec.channel_path}"
                       f"::{spec.package}` lists its files")
    return [{"name": spec.package, "family": family, "ckey": f["ckey"]} for f in files]


def run(ctx: Context, args: argparse.Namespace) -> int:
    specs = [PackageSpec.parse(s, need_package=True) for s in args.specs]
    action = args.action_name
    target = getattr(args, "destination", None)
    if target:
        split_channel_path(target)
    for spec in specs:
        if target and target == spec.channel_path:
            raise InvalidInput(f"{spec} is already in {target}", "Give another destination with -d")
    # Resolve every spec (and the destination) before acting, so a typo in the last one leaves
    # every channel as it was.
    if target:
        ctx.client.channel(target)
    resolved = [(spec, bulk_items(ctx, spec, args.family)) for spec in specs]
    if action == "delete" and not args.force:
        listing = ", ".join(str(s) for s in specs)
        try:
            confirmed = ctx.confirm(f"Remove {listing}? [y/N]: ", default=False)
        except InvalidInput:  # no answer (end of input): a script that forgot -f
            confirmed = False
        if not confirmed:
            raise TaipanError("Nothing was removed", "Answer y, or pass -f/--force", code="cancelled")
    for spec, items in resolved:
        ctx.client.bulk(spec.channel_path, action, items, target)
        done = {"copy": f"copied to {target}", "move": f"moved to {target}", "delete": "removed"}[action]
        ctx.out.success(f"{spec} {done}")
    return ExitCode.OK
