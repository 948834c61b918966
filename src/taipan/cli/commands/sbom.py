"""`conda-repo sbom`: save the SBOM of an artifact file (SPDX JSON; CycloneDX with --format cyclonedx).

    conda repo sbom --channel CH --ckey noarch/hello-1.0-0.conda
    conda repo sbom --channel CH --package hello --version 1.0 --os noarch --family conda

The file is saved in the current directory under the name the server gives
(``<name>-<version>-<build>.spdx.json``), or at ``--output PATH`` (a file, or a directory to save into).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from taipan.cli.commands.channel import FAMILIES
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import all_items
from taipan.errors import InvalidInput, NotFound

FORMATS = ("spdx", "cyclonedx")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sbom", help="download the SBOM of an artifact file",
                              description="Download the software bill of materials of one file of a channel, "
                                          "named by its ckey, or by package, version, platform and family.")
    p.add_argument("--channel", required=True, metavar="CHANNEL", help="CHANNEL or CHANNEL/SUBCHANNEL")
    p.add_argument("--ckey", default="", help="the file's ckey, e.g. noarch/hello-1.0-0.conda")
    p.add_argument("--package", default="", help="the package name (without --ckey)")
    p.add_argument("--version", default="", help="the package version (without --ckey)")
    p.add_argument("--os", default="", metavar="SUBDIR", help="the platform subdir, e.g. linux-64 (without --ckey)")
    p.add_argument("--family", default="conda", choices=FAMILIES, help="artifact family (default: conda)")
    p.add_argument("--format", default="spdx", choices=FORMATS, help="spdx (SPDX 2.3 JSON, the default) or "
                   "cyclonedx (CycloneDX 1.6 JSON)")
    p.add_argument("--output", "-o", metavar="PATH", help="where to save it (default: the current directory)")
    p.set_defaults(func=run)


def _version_and_subdir(item: dict[str, Any]) -> tuple[str | None, str | None]:
    record = (item.get("metadata") or {}).get("repodata_record.json") or {}
    return (record.get("version") or item.get("version"),
            record.get("subdir") or item.get("subdir") or item.get("platform"))


def find_ckeys(ctx: Context, args: argparse.Namespace) -> list[str]:
    if not (args.package and args.version and args.os):
        raise InvalidInput("Give --ckey, or --package, --version and --os (and --family)",
                           "e.g. --package hello --version 1.0 --os noarch --family conda", code="missing_option")
    files = all_items(lambda o, n: ctx.client.files(args.channel, args.family, args.package, o, n))
    return [str(f["ckey"]) for f in files if _version_and_subdir(f) == (args.version, args.os)]


def target_path(output: str | None, filename: str) -> Path:
    if not output:
        return Path.cwd() / filename
    path = Path(output).expanduser()
    if path.is_dir() or output.endswith(("/", "\\")):
        path.mkdir(parents=True, exist_ok=True)
        return path / filename
    if not path.parent.is_dir():
        raise InvalidInput(f"No such directory: {path.parent}", "Create it first, or give another --output",
                           code="no_such_directory")
    return path


def run(ctx: Context, args: argparse.Namespace) -> int:
    ckeys = [args.ckey] if args.ckey else find_ckeys(ctx, args)
    if not ckeys:
        what = f"{args.package} {args.version} ({args.os}, {args.family})"
        raise NotFound(f"No SBOM for {what} available",
                       f"`conda repo channel --list-files {args.channel}::{args.package} --family {args.family}` "
                       "shows its files", code="sbom_not_found")
    if len(ckeys) > 1 and args.output and not Path(args.output).is_dir():
        raise InvalidInput(f"{len(ckeys)} files match; --output must be a directory",
                           "Give --ckey to choose one file", code="ambiguous")
    for ckey in ckeys:
        try:
            filename, data = ctx.client.sbom(args.channel, ckey, args.format)
        except NotFound as exc:
            raise NotFound(f"No SBOM for {ckey} available", exc.hint or "Check the ckey",
                           code="sbom_not_found") from exc
        ext = ".spdx.json" if args.format == "spdx" else ".cdx.json"
        name = filename or ckey.rsplit("/", 1)[-1] + ext
        path = target_path(args.output, name)
        path.write_bytes(data)
        ctx.out.success(f"SBOM of {ckey} saved to {path}")
    return ExitCode.OK
