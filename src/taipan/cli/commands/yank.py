"""`conda-repo yank` and `unyank`: PEP 592 yanking of Python files (installers skip a yanked file
unless it is pinned exactly; it stays downloadable)."""

from __future__ import annotations

import argparse

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.specs import PackageSpec

SPEC_HELP = "CHANNEL[/SUBCHANNEL]::PACKAGE[/VERSION[/FILENAME]]"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("yank", help="yank Python files (PEP 592): installers skip them",
                              description="Mark a package's files (all, one version's or one file) as yanked.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("-r", "--reason", default="", help="why the files are yanked (shown by pip)")
    p.add_argument("--family", default="python", help="artifact family (default: python)")
    p.add_argument("--json", action="store_true", help="print the changed files as JSON")
    p.set_defaults(func=run, yanked=True)
    p = subparsers.add_parser("unyank", help="undo a yank", description="Make yanked files installable again.")
    p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    p.add_argument("--family", default="python", help="artifact family (default: python)")
    p.add_argument("--json", action="store_true", help="print the changed files as JSON")
    p.set_defaults(func=run, yanked=False, reason="")


def run(ctx: Context, args: argparse.Namespace) -> int:
    spec = PackageSpec.parse(args.spec, need_package=True)
    assert spec.package is not None
    ckeys = None
    if spec.filename:
        files = ctx.client.files(spec.channel_path, args.family, spec.package).get("items", [])
        ckeys = [f["ckey"] for f in files if f["ckey"].rsplit("/", 1)[-1] == spec.filename]
        ckeys = ckeys or [spec.filename]
    answer = ctx.client.yank(spec.channel_path, args.family, spec.package, yanked=args.yanked,
                             reason=args.reason, version=spec.version if not spec.filename else None, ckeys=ckeys)
    if args.json:
        ctx.out.json(answer.get("items", []))
    else:
        verb = "yanked" if args.yanked else "unyanked"
        ctx.out.success(f"{spec}: {answer.get('count', 0)} file(s) {verb}")
    return ExitCode.OK
