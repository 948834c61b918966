"""`conda-repo channel`: list, show, create, remove, lock and freeze channels; list packages and files."""

from __future__ import annotations

import argparse
import json
from typing import Any

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import all_items, items_of
from taipan.cli.specs import PackageSpec, file_field, file_name, file_package, file_platform, matches
from taipan.domain.names import split_channel_path
from taipan.errors import InvalidInput, NotFound

FAMILIES = ("conda", "python", "cran", "anaconda_project", "anaconda_env", "notebook", "gra")
PRIVACY = {"lock": "private", "soft_lock": "authenticated", "unlock": "public"}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("channel", help="manage channels and list their contents",
                              description="Manage channels (CHANNEL or CHANNEL/SUBCHANNEL).")
    act = p.add_mutually_exclusive_group(required=True)
    act.add_argument("--list", action="store_true", help="list the channels you own or can reach")
    act.add_argument("--show", metavar="CHANNEL", help="show a channel's details")
    act.add_argument("--create", metavar="CHANNEL", help="create a channel (or CHANNEL/SUBCHANNEL)")
    act.add_argument("--remove", metavar="CHANNEL", help="delete a channel and its packages")
    act.add_argument("--lock", metavar="CHANNEL", help="make a channel private")
    act.add_argument("--soft-lock", metavar="CHANNEL", help="let only signed-in users see a channel")
    act.add_argument("--unlock", metavar="CHANNEL", help="make a channel public")
    act.add_argument("--freeze", metavar="CHANNEL", help="stop publishing changes to a channel")
    act.add_argument("--unfreeze", metavar="CHANNEL", help="publish a frozen channel's changes again")
    act.add_argument("--list-packages", nargs="+", metavar="CHANNEL", help="list the packages of channels")
    act.add_argument("--list-files", nargs="+", metavar="SPEC",
                     help="list files: CHANNEL[/SUB][::PACKAGE[/VERSION[/FILENAME]]]")
    act.add_argument("--history", metavar="CHANNEL", help="show a channel's event history")
    p.add_argument("--family", default="conda", choices=FAMILIES, help="artifact family (default: conda)")
    p.add_argument("--full-details", action="store_true",
                   help="with --list-files: every file as JSON; with --show: include subchannels")
    p.add_argument("-o", "--offset", type=int, default=0, help="skip this many items (default 0)")
    p.add_argument("-l", "--limit", type=int, default=50, help="show at most this many items (default 50)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _owners(ch: dict[str, Any]) -> str:
    return ", ".join(str(o) for o in ch.get("owners") or [])


def list_channels(ctx: Context, args: argparse.Namespace) -> None:
    page = ctx.client.account_channels()
    if args.json:
        return ctx.out.json(page)
    rows = [(c.get("name"), c.get("privacy"), c.get("artifact_count"), c.get("subchannel_count"),
             c.get("mirror_count"), "yes" if c.get("frozen") else "", _owners(c)) for c in items_of(page)]
    ctx.out.table(["Name", "Privacy", "Artifacts", "Subchannels", "Mirrors", "Frozen", "Owners"], rows)
    ctx.out.info(f"{page.get('total_count', len(rows))} channel(s)")


def show_channel(ctx: Context, args: argparse.Namespace) -> None:
    channel = ctx.client.channel(args.show)
    sub = split_channel_path(args.show)[1]
    if args.full_details and sub is None:
        channel["subchannels"] = items_of(ctx.client.subchannels(args.show))
    if args.json:
        return ctx.out.json(channel)
    keys = [("Name", "name"), ("Description", "description"), ("Privacy", "privacy"),
            ("Frozen", "frozen"), ("Artifacts", "artifact_count"), ("Downloads", "download_count"),
            ("Mirrors", "mirror_count"), ("Subchannels", "subchannel_count"), ("Created", "created"),
            ("Updated", "updated"), ("Parent", "parent")]
    pairs = [(label, channel.get(key)) for label, key in keys if key in channel]
    pairs.append(("Owners", _owners(channel)))
    if "subchannels" in channel:
        pairs.append(("Subchannel list", ", ".join(str(s.get("name")) for s in channel["subchannels"])))
    ctx.out.fields(pairs)


def _version(pkg: dict[str, Any]) -> Any:
    meta = pkg.get("metadata") or {}
    return pkg.get("version") or meta.get("version") or meta.get("Version") or pkg.get("latest_version")


def list_packages(ctx: Context, args: argparse.Namespace) -> None:
    pages = {path: ctx.client.artifacts(path, args.offset, args.limit) for path in args.list_packages}
    if args.json:
        return ctx.out.json(pages)
    for path, page in pages.items():
        rows = []
        for pkg in items_of(page):
            meta = pkg.get("metadata") or {}
            rows.append((pkg.get("name"), pkg.get("family"), _version(pkg),
                         ", ".join(meta.get("subdirs") or []), meta.get("license"),
                         pkg.get("file_count"), pkg.get("download_count"), meta.get("summary")))
        total = page.get("total_count", len(rows))
        ctx.out.table(["Name", "Family", "Version", "Platforms", "License", "Files", "Downloads", "Summary"],
                      rows, title=f"{path}: {total} package(s)")


def _spec_files(ctx: Context, args: argparse.Namespace, spec: PackageSpec) -> list[dict[str, Any]]:
    client = ctx.client
    path = spec.channel_path
    if spec.package:
        packages = [spec.package]
    else:
        packages = [str(p["name"]) for p in all_items(lambda o, n: client.artifacts(path, o, n))
                    if p.get("family", args.family) == args.family]
    files: list[dict[str, Any]] = []
    for name in packages:
        files += [f for f in all_items(lambda o, n, name=name: client.files(path, args.family, name, o, n))
                  if matches(spec, f)]
    if spec.package and not files:
        raise NotFound(f"No files match {spec} in the {args.family} family",
                       f"`conda-repo channel --list-packages {path}` shows what the channel holds")
    return files


def file_summary(path: str, item: dict[str, Any]) -> dict[str, Any]:
    return {"ckey": item.get("ckey"), "filename": file_name(item),
            "package": file_package(item), "version": file_field(item, "version"),
            "platform": file_platform(item), "channel": path, "size": item.get("size"),
            "cve_score": item.get("cve_score"), "cve_status": item.get("cve_status")}


def list_files(ctx: Context, args: argparse.Namespace) -> None:
    specs = [PackageSpec.parse(s) for s in args.list_files]
    summaries: list[dict[str, Any]] = []
    details: list[dict[str, Any]] = []
    for spec in specs:
        for item in _spec_files(ctx, args, spec):
            summary = file_summary(spec.channel_path, item)
            summaries.append(summary)
            details.append({**summary, **{k: v for k, v in item.items() if k not in summary}})
    if args.full_details:
        return ctx.out.json(details)
    if args.json:
        return ctx.out.json(summaries)
    rows = [(s["channel"], s["package"], s["version"], s["platform"], s["filename"], s["size"],
             s["cve_score"], s["cve_status"]) for s in summaries]
    columns = ["Channel", "Package", "Version", "Platform", "File", "Size", "CVE score", "CVE status"]
    ctx.out.table(columns, rows)
    ctx.out.info(f"{len(rows)} file(s)")


def history(ctx: Context, args: argparse.Namespace) -> None:
    page = ctx.client.history(args.history, args.offset, args.limit)
    if args.json:
        return ctx.out.json(page)
    rows = [(e.get("created"), e.get("event_type"), json.dumps(e.get("data") or {}, sort_keys=True))
            for e in items_of(page)]
    ctx.out.table(["Created", "Event", "Details"], rows, title=f"History of {args.history}")


def _update(ctx: Context, path: str, changes: dict[str, Any], done: str) -> None:
    answer = ctx.client.update_channel(path, changes)
    if ctx.args.json:
        ctx.out.json(answer or {"name": path, **changes})
    ctx.out.success(done)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.offset < 0 or args.limit < 0:
        raise InvalidInput("--offset and --limit cannot be negative", "Give 0 or more")
    if args.list:
        list_channels(ctx, args)
    elif args.show:
        show_channel(ctx, args)
    elif args.create:
        created = ctx.client.create_channel(args.create)
        if args.json:
            ctx.out.json(created)
        ctx.out.success(f"Channel {args.create} created")
    elif args.remove:
        ctx.client.delete_channel(args.remove)
        ctx.out.success(f"Channel {args.remove} removed")
    elif args.list_packages:
        list_packages(ctx, args)
    elif args.list_files:
        list_files(ctx, args)
    elif args.history:
        history(ctx, args)
    elif args.freeze or args.unfreeze:
        path = args.freeze or args.unfreeze
        state = "frozen" if args.freeze else "unfrozen"
        _update(ctx, path, {"frozen": bool(args.freeze)}, f"Channel {path} {state}")
    else:
        action, path = next((a, getattr(args, a)) for a in PRIVACY if getattr(args, a))
        _update(ctx, path, {"privacy": PRIVACY[action]}, f"Channel {path} is now {PRIVACY[action]}")
    return ExitCode.OK
