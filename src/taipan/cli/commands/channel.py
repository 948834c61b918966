"""`conda-repo channel`: list, show, create, remove, lock and freeze channels; list packages and files."""

from __future__ import annotations

import argparse
import json
from typing import Any

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import all_items, items_of, rest_note, window
from taipan.cli.specs import PackageSpec, file_field, file_name, file_package, file_platform, matches
from taipan.domain.names import split_channel_path
from taipan.errors import InvalidInput, NotFound, TaipanError

FAMILIES = ("conda", "python", "cran", "anaconda_project", "anaconda_env", "notebook", "gra", "sbom")
PRIVACY = {"lock": "private", "soft_lock": "authenticated", "unlock": "public"}
HISTORY_LIMIT = 50


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("channel", help="manage channels and list their contents",
                              description="Manage channels (CHANNEL or CHANNEL/SUBCHANNEL).")
    act = p.add_mutually_exclusive_group(required=True)
    act.add_argument("--list", action="store_true",
                     help="list the channels you can reach (signed out: the public ones)")
    act.add_argument("--show", metavar="CHANNEL", help="show a channel's details")
    act.add_argument("--create", metavar="CHANNEL", help="create a channel (or CHANNEL/SUBCHANNEL)")
    act.add_argument("--remove", metavar="CHANNEL",
                     help="delete a channel with its packages, subchannels and mirrors (asks first)")
    act.add_argument("--lock", metavar="CHANNEL", help="make a channel private")
    act.add_argument("--soft-lock", metavar="CHANNEL", help="let only signed-in users see a channel")
    act.add_argument("--unlock", metavar="CHANNEL", help="make a channel public")
    act.add_argument("--freeze", metavar="CHANNEL", help="stop publishing changes to a channel")
    act.add_argument("--unfreeze", metavar="CHANNEL", help="publish a frozen channel's changes again")
    act.add_argument("--list-packages", nargs="+", metavar="CHANNEL", help="list the packages of channels")
    act.add_argument("--list-files", nargs="+", metavar="SPEC",
                     help="list files: CHANNEL[/SUB][::PACKAGE[/VERSION[/FILENAME]]]")
    act.add_argument("--history", metavar="CHANNEL", help="show a channel's event history")
    act.add_argument("--set-filters", metavar="CHANNEL",
                     help="set the channel-level filters applied to uploads, copies and mirror syncs into it "
                          "(with --licenses, --exclude_spec, --cve_score, --exclude_uncurated_cve_packages; "
                          "filters not given are kept)")
    act.add_argument("--clear-filters", metavar="CHANNEL", help="remove every channel-level filter")
    flt = p.add_argument_group("channel filters (with --set-filters)")
    flt.add_argument("--licenses", help="comma list; -X excludes a license family, +X or X allows only those "
                     "(agpl, gpl2, gpl3, lgpl, bsd, mit, apache, psf, public_domain, proprietary, other, none)")
    flt.add_argument("--exclude_spec", "--exclude-spec", action="append", dest="exclude_spec",
                     help="a MatchSpec of conda files to keep out (repeatable)")
    flt.add_argument("--cve_score", "--cve-score", dest="cve_score",
                     help="keep out files whose CVE score is at or above this (0-10; '' removes it)")
    flt.add_argument("--exclude_uncurated_cve_packages", "--exclude-uncurated-cve-packages",
                     dest="exclude_uncurated", choices=("True", "False", "true", "false"),
                     help="keep out files with uncurated (reported) CVEs")
    p.add_argument("--family", default="conda", choices=FAMILIES, help="artifact family (default: conda)")
    p.add_argument("--full-details", action="store_true",
                   help="with --list-files: every file as JSON; with --show: include subchannels")
    p.add_argument("-o", "--offset", type=int, default=0, help="skip this many items (default 0)")
    p.add_argument("-l", "--limit", type=int, default=None,
                   help=f"show at most this many items (default: all; {HISTORY_LIMIT} for --history)")
    p.add_argument("-f", "--force", action="store_true", help="with --remove: do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _owners(ch: dict[str, Any]) -> str:
    return ", ".join(str(o) for o in ch.get("owners") or [])


def _more(ctx: Context, args: argparse.Namespace, action: str, shown: int, total: int | None,
          noun: str) -> None:
    """Never stop short in silence: say what was left out and the command that shows it."""
    note = rest_note(args.offset, shown, total, noun)
    if note and total is not None and args.offset + shown < total:
        ctx.out.info(f"{note}; `conda-repo channel {action} --offset {args.offset + shown}` shows the next ones")
    elif note:
        ctx.out.info(note)


def list_channels(ctx: Context, args: argparse.Namespace) -> None:
    # GET /channels: every channel the caller can reach, public ones included, as the seed's
    # "channels you have access to" (GET /account/channels lists only the caller's own).
    items, total = window(lambda o, n: ctx.client.channels(o, n), args.offset, args.limit)
    total = len(items) + args.offset if total is None else total
    if args.json:
        return ctx.out.json({"total_count": total, "items": items})
    rows = [(c.get("name"), c.get("privacy"), c.get("artifact_count"), c.get("subchannel_count"),
             c.get("mirror_count"), "yes" if c.get("frozen") else "", _owners(c)) for c in items]
    ctx.out.table(["Name", "Privacy", "Artifacts", "Subchannels", "Mirrors", "Frozen", "Owners"], rows)
    ctx.out.info(f"{total} channel(s)")
    _more(ctx, args, "--list", len(rows), total, "channels")


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
    pairs.append(("Filters", _filters_text(channel.get("filters") or {})))
    if "subchannels" in channel:
        pairs.append(("Subchannel list", ", ".join(str(s.get("name")) for s in channel["subchannels"])))
    ctx.out.fields(pairs)


def _filters_text(filters: dict[str, Any]) -> str:
    if not filters:
        return "none"
    return "; ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in filters.items())


def set_filters(ctx: Context, args: argparse.Namespace) -> None:
    path = args.set_filters or args.clear_filters
    if args.clear_filters:
        new: dict[str, Any] = {}
    else:
        new = dict(ctx.client.channel(path).get("filters") or {})
        given = False
        if args.licenses is not None:
            new.pop("include_licenses", None)
            new.pop("exclude_licenses", None)
            new["licenses"] = args.licenses
            given = True
        if args.exclude_spec:
            new["exclude_specs"] = args.exclude_spec
            given = True
        if args.cve_score is not None:
            if args.cve_score == "":
                new.pop("cve_score_threshold", None)
            else:
                try:
                    new["cve_score_threshold"] = float(args.cve_score)
                except ValueError as exc:
                    raise InvalidInput(f"--cve_score {args.cve_score!r} is not a number", "Give 0 to 10, e.g. 7.0",
                                       code="usage") from exc
            given = True
        if args.exclude_uncurated is not None:
            new["exclude_non_curated_cve"] = args.exclude_uncurated.lower() == "true"
            given = True
        if not given:
            raise InvalidInput("--set-filters needs at least one filter", "Give --licenses, --exclude_spec, "
                               "--cve_score or --exclude_uncurated_cve_packages", code="usage")
    _update(ctx, path, {"filters": new}, f"Filters of {path}: {_filters_text(new)}")


def _version(pkg: dict[str, Any]) -> Any:
    meta = pkg.get("metadata") or {}
    return pkg.get("version") or meta.get("version") or meta.get("Version") or pkg.get("latest_version")


def list_packages(ctx: Context, args: argparse.Namespace) -> None:
    pages: dict[str, dict[str, Any]] = {}
    for path in args.list_packages:
        items, total = window(lambda o, n, path=path: ctx.client.artifacts(path, o, n), args.offset, args.limit)
        pages[path] = {"total_count": len(items) + args.offset if total is None else total, "items": items}
    if args.json:
        return ctx.out.json(pages)
    for path, page in pages.items():
        rows = []
        for pkg in page["items"]:
            meta = pkg.get("metadata") or {}
            rows.append((pkg.get("name"), pkg.get("family"), _version(pkg),
                         ", ".join(meta.get("subdirs") or []), meta.get("license"),
                         pkg.get("file_count"), pkg.get("download_count"), meta.get("summary")))
        total = page["total_count"]
        ctx.out.table(["Name", "Family", "Version", "Platforms", "License", "Files", "Downloads", "Summary"],
                      rows, title=f"{path}: {total} package(s)")
        _more(ctx, args, f"--list-packages {path}", len(rows), total, "packages")


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
    limit = HISTORY_LIMIT if args.limit is None else args.limit  # newest first: the recent ones matter
    page = ctx.client.history(args.history, args.offset, limit)
    if args.json:
        return ctx.out.json(page)
    rows = [(e.get("created"), e.get("event_type"), json.dumps(e.get("data") or {}, sort_keys=True))
            for e in items_of(page)]
    ctx.out.table(["Created", "Event", "Details"], rows, title=f"History of {args.history}")
    total = page.get("total_count") if isinstance(page, dict) else None
    _more(ctx, args, f"--history {args.history}", len(rows), None if total is None else int(total), "events")


def remove_channel(ctx: Context, args: argparse.Namespace) -> None:
    """Delete a channel, after saying what goes with it and getting a yes (or -f/--force)."""
    path = args.remove
    channel = ctx.client.channel(path)  # a missing channel fails here, before any question
    if not args.force:
        parts = [f"{channel.get('artifact_count') or 0} package(s)"]
        if split_channel_path(path)[1] is None:
            parts.append(f"{channel.get('subchannel_count') or 0} subchannel(s)")
        parts.append(f"{channel.get('mirror_count') or 0} mirror(s)")
        what = f"channel {path} with its {', '.join(parts)}"
        if not ctx.interactive:
            raise InvalidInput(f"Not removing {what}: confirmation is needed and there is no terminal to ask",
                               f"Pass -f/--force to remove it: `conda-repo channel --remove {path} --force`",
                               code="confirmation_required")
        try:
            confirmed = ctx.confirm(f"Remove {what}? This cannot be undone. [y/N]: ", default=False)
        except InvalidInput:
            confirmed = False
        if not confirmed:
            raise TaipanError(f"Channel {path} was not removed", "Answer y, or pass -f/--force",
                              code="cancelled")
    ctx.client.delete_channel(path)
    ctx.out.success(f"Channel {path} removed")


def _update(ctx: Context, path: str, changes: dict[str, Any], done: str) -> None:
    answer = ctx.client.update_channel(path, changes)
    if ctx.args.json:
        ctx.out.json(answer or {"name": path, **changes})
    ctx.out.success(done)


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.offset < 0 or (args.limit is not None and args.limit < 0):
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
        remove_channel(ctx, args)
    elif args.list_packages:
        list_packages(ctx, args)
    elif args.list_files:
        list_files(ctx, args)
    elif args.history:
        history(ctx, args)
    elif args.set_filters or args.clear_filters:
        set_filters(ctx, args)
    elif args.freeze or args.unfreeze:
        path = args.freeze or args.unfreeze
        state = "frozen" if args.freeze else "unfrozen"
        _update(ctx, path, {"frozen": bool(args.freeze)}, f"Channel {path} {state}")
    else:
        action, path = next((a, getattr(args, a)) for a in PRIVACY if getattr(args, a))
        _update(ctx, path, {"privacy": PRIVACY[action]}, f"Channel {path} is now {PRIVACY[action]}")
    return ExitCode.OK
