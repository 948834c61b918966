"""`conda-repo download`: fetch an artifact file of a channel to the current directory or a path.

    conda repo download --channel CH --notebook my-analysis [--filename report.ipynb]
    conda repo download --channel CH --ckey envs/analytics/environment.yml
    conda repo download --channel CH --package hello [--version 1.0] [--os noarch] [--family conda]

With --package the files of the version uploaded last are fetched (all of them when several platforms match and
--filename is a directory or not given). Files are streamed, written beside the target and renamed
when complete.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import quote

from taipan.cli.commands.channel import FAMILIES
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import all_items
from taipan.errors import InvalidInput, NotFound


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("download", help="download artifacts (notebooks, environments, packages...)",
                              description="Download a file of a channel: a notebook by name, any file by its "
                                          "ckey, or a package's newest files.")
    p.add_argument("--channel", "-c", required=True, metavar="CHANNEL", help="CHANNEL or CHANNEL/SUBCHANNEL")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--notebook", metavar="NAME", help="a notebook's name (with or without .ipynb)")
    what.add_argument("--ckey", help="a file's ckey, e.g. envs/analytics/environment.yml")
    what.add_argument("--package", metavar="NAME", help="a package (or environment, project...) name")
    p.add_argument("--version", help="with --package: this version (default: the one uploaded last)")
    p.add_argument("--os", metavar="SUBDIR", help="with --package: only this platform subdir")
    p.add_argument("--family", default="conda", choices=FAMILIES, help="with --package: its family (default: conda)")
    p.add_argument("--filename", "-o", metavar="FILE",
                   help="where to save it: a file name or path, or a directory (default: the current directory)")
    p.set_defaults(func=run)


def _newest(ctx: Context, args: argparse.Namespace) -> list[str]:
    files: list[dict[str, Any]] = list(all_items(
        lambda o, n: ctx.client.files(args.channel, args.family, args.package, o, n)))
    if args.os:
        files = [f for f in files if f.get("subdir") == args.os or f.get("platform") == args.os]
    if args.version:
        files = [f for f in files if f.get("version") == args.version]
    elif files:
        newest = max(files, key=lambda f: str(f.get("created_at") or ""))["version"]
        files = [f for f in files if f.get("version") == newest]
    if not files:
        raise NotFound(f"No file of {args.package} ({args.family}) matches in {args.channel}",
                       f"`conda repo channel --list-files {args.channel}::{args.package} --family {args.family}` "
                       "shows its files", code="file_not_found")
    return [str(f["ckey"]) for f in files]


def _target(filename: str | None, name: str, several: bool) -> Path:
    if not filename:
        return Path.cwd() / name
    path = Path(filename).expanduser()
    if path.is_dir() or filename.endswith(("/", "\\")):
        path.mkdir(parents=True, exist_ok=True)
        return path / name
    if several:
        raise InvalidInput("Several files match; --filename must be a directory",
                           "Give --ckey, --version or --os to choose one file", code="ambiguous")
    if not path.parent.is_dir():
        raise InvalidInput(f"No such directory: {path.parent}", "Create it first, or give another --filename",
                           code="no_such_directory")
    return path


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.notebook:
        name = args.notebook if args.notebook.endswith(".ipynb") else args.notebook + ".ipynb"
        ckeys = [f"jupyter/{name}"]
    elif args.ckey:
        ckeys = [args.ckey.strip("/")]
    else:
        ckeys = _newest(ctx, args)
    for ckey in ckeys:
        path = _target(args.filename, ckey.rsplit("/", 1)[-1], len(ckeys) > 1)
        url = f"/repo/{quote(args.channel, safe='/')}/{quote(ckey, safe='/')}"
        try:
            ctx.client.stream_to("GET", url, path)
        except NotFound as exc:
            raise NotFound(f"{ckey} is not in channel {args.channel}", exc.hint or "Check the name",
                           code="file_not_found") from exc
        ctx.out.success(f"Downloaded {ckey} to {path}")
    return ExitCode.OK
