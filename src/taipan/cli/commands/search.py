"""`conda-repo search NAME`: find packages across the channels you can see."""

from __future__ import annotations

import argparse
from typing import Any

from taipan.cli.commands.channel import FAMILIES
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import items_of


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search", help="search packages by name")
    p.add_argument("name", help="a package name or part of one")
    p.add_argument("-o", "--offset", type=int, default=0, help="skip this many results")
    p.add_argument("-l", "--limit", type=int, default=50, help="show at most this many results")
    p.add_argument("-s", "--sort", default="-download_count",
                   help="download_count, name or updated_at; prefix - for descending (default: -download_count)")
    p.add_argument("-t", "--package-type", choices=("conda", "pypi"), help=argparse.SUPPRESS)
    p.add_argument("-p", "--platform", help=argparse.SUPPRESS)
    p.add_argument("--family", choices=FAMILIES, help="only this artifact family")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _get(item: dict[str, Any], *keys: str) -> Any:
    meta = item.get("metadata") or {}
    for key in keys:
        for source in (item, meta):
            if source.get(key) not in (None, "", []):
                return source[key]
    return None


def channel_path(item: dict[str, Any]) -> str:
    if item.get("channel_path"):
        return str(item["channel_path"])
    channel, sub = item.get("channel"), item.get("subchannel")
    if isinstance(channel, dict):
        channel = channel.get("name")
    if isinstance(sub, dict):
        sub = sub.get("name")
    return f"{channel}/{sub}" if sub else str(channel or "")


def run(ctx: Context, args: argparse.Namespace) -> int:
    page = ctx.client.search(args.name, args.offset, args.limit, args.sort, args.family)
    items = [i for i in items_of(page) if not args.family or i.get("family") == args.family]
    if args.json:
        ctx.out.json(items)
        return ExitCode.OK
    rows = []
    for item in items:
        platforms = _get(item, "platforms", "subdirs", "subdir")
        if isinstance(platforms, list):
            platforms = ", ".join(str(p) for p in platforms)
        builds = _get(item, "build", "builds")
        if isinstance(builds, list):
            builds = ", ".join(str(b) for b in builds)
        rows.append((channel_path(item), item.get("name"), _get(item, "version", "latest_version"),
                     item.get("family"), builds, _get(item, "license"), platforms))
    ctx.out.table(["Channel", "Name", "Version", "Family", "Build", "License", "Platforms"], rows)
    total = page.get("total_count", len(rows)) if isinstance(page, dict) else len(rows)
    ctx.out.info(f"{total} result(s) for {args.name!r}")
    return ExitCode.OK
