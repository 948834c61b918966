"""`conda-repo mirror`: create, update, delete, show, list, stop and restart mirrors of upstream channels."""

from __future__ import annotations

import argparse
import re
import time
from typing import Any

import yaml

from taipan.cli.context import Context
from taipan.cli.paging import items_of
from taipan.client import mirrors as api
from taipan.errors import Conflict, Forbidden, InvalidInput, NotFound, TaipanError, UpstreamError

DEFAULT_CRON = "0 0 * * *"
TYPES = ("conda", "python_simple", "CRAN")
LICENSES = ("agpl", "gpl2", "gpl3", "lgpl", "bsd", "mit", "apache", "psf", "public_domain", "proprietary",
            "other", "none")
# --show PROPERTY names -> keys of the normalized mirror.
SHOW_PROPS = {"id": "id", "name": "name", "source": "source_root", "source_root": "source_root",
              "type": "type", "mode": "mode", "state": "state", "proxy": "proxy", "cron": "cron",
              "last_run_at": "last_run_at", "created_at": "created_at", "updated_at": "updated_at",
              "filters": "filters", "sync_state": "sync_state", "channel": "channel"}
# Quotes that survive copying a command from a web page or a word processor.
QUOTES = "\"'\u201c\u201d\u201e\u201f\u2018\u2019\u201a\u201b\u00ab\u00bb\u2033\u2032"
# How long `--create/--restart ... --run_now` waits for the first answer of the upstream.
FIRST_CONTACT_SECONDS = 180.0
EPILOG = """\
Clearing a filter: with --update, an empty value clears that filter, the same for every filter:
  --subdirs "" --projects "" --licenses "" --only_spec "" --exclude_spec "" --include_spec ""
  --cve_score ""  --date_from "" (or --date_to "": clears the whole date window)
  --exclude_uncurated_cve_packages False  --only_signed False  --include_dependencies False
Filters not named on the command line keep their values.

Yes/no options take an optional value: --only_signed, --only_signed True, --only_signed False
(also yes/no, 1/0, on/off).
"""


def parse_bool(text: str) -> bool:
    value = text.strip().strip(QUOTES).strip().lower()
    if value in ("true", "yes", "y", "1", "on"):
        return True
    if value in ("false", "no", "n", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False (or yes/no, 1/0), got {text!r}")


def parse_score(text: str) -> float | None:
    value = text.strip().strip(QUOTES).strip()
    if not value:
        return None  # "": clear the filter
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a CVE score between 0 and 10, got {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mirror", help="mirror upstream channels into a channel",
                              description="Create and manage mirrors of upstream conda channels.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    act = p.add_mutually_exclusive_group(required=True)
    act.add_argument("--create", metavar="NAME", help="create a mirror (needs --channel and --source)")
    act.add_argument("--update", metavar="NAME", help="change a mirror; its next run replaces its contents")
    act.add_argument("--delete", metavar="NAME", help="delete a mirror and the files it brought")
    act.add_argument("--show", nargs="+", metavar=("NAME", "PROPERTY"),
                     help="show a mirror, or only the given properties (" + ", ".join(SHOW_PROPS) + ")")
    act.add_argument("-l", "--list", nargs="?", const="", metavar="CHANNEL",
                     help="list the mirrors of a channel")
    act.add_argument("--list-all", action="store_true", help="list every mirror you can see")
    act.add_argument("--stop", metavar="NAME", help="stop a running or pending mirror sync")
    act.add_argument("--restart", metavar="NAME", help="run a mirror now (e.g. after --stop)")
    act.add_argument("--sync-state", metavar="NAME", help="show the progress and counters of a mirror's sync")
    p.add_argument("-c", "--channel", help="the channel (CHANNEL or CHANNEL/SUBCHANNEL) holding the mirror")
    p.add_argument("-s", "--source", help="the upstream channel URL, e.g. https://conda.anaconda.org/conda-forge")
    p.add_argument("-n", "--name", help="with --update: a new name")
    p.add_argument("--mode", choices=("active", "passive"), default=None,
                   help="active: download every file now; passive (default): index now, files on first use")
    p.add_argument("--type", default="conda", choices=TYPES, help="the mirror type (default conda)")
    p.add_argument("--cron", default=DEFAULT_CRON, help=f"when to sync, in cron syntax (default '{DEFAULT_CRON}')")
    p.add_argument("--proxy", default=None, help="an http:// proxy for the upstream ('' clears it)")
    p.add_argument("--run_now", "--run-now", dest="run_now", action="store_true",
                   help="sync now instead of waiting for the schedule; waits until the upstream "
                        "answers and fails if it cannot be reached")
    f = p.add_argument_group("filters")
    f.add_argument("--subdirs", help='[conda] platforms, e.g. "noarch,linux-64,osx-arm64"; '
                   '[CRAN] trees, e.g. "src/contrib,bin/windows/contrib/4.4" (default src/contrib)')
    f.add_argument("--projects", help="[python] projects to mirror, comma separated")
    f.add_argument("--python_tags", "--python-tags", dest="python_tags",
                   help='[python] wheel Python tags to keep, e.g. "cp311,cp312,py3" (sdists are always kept)')
    f.add_argument("--platform_tags", "--platform-tags", dest="platform_tags",
                   help='[python] wheel platform tags to keep, globs allowed, e.g. "manylinux*x86_64,any"')
    f.add_argument("--licenses", help='license families, "-" to exclude: "-gpl3,mit" (' + ", ".join(LICENSES) + ")")
    f.add_argument("--only_spec", "--only-spec", dest="only_spec", action="append", default=[],
                   metavar="SPEC",
                   help="mirror only what matches this MatchSpec (python: PEP 508, CRAN: 'ggplot2>=3.4'); repeatable")
    f.add_argument("--exclude_spec", "--exclude-spec", dest="exclude_spec", action="append", default=[],
                   metavar="SPEC", help="leave out what matches this MatchSpec (repeatable)")
    f.add_argument("--include_spec", "--include-spec", dest="include_spec", action="append", default=[],
                   metavar="SPEC", help="re-admit what an --exclude_spec removed (repeatable)")
    f.add_argument("--include_dependencies", "--include-dependencies", dest="include_dependencies",
                   nargs="?", const=True, default=None, type=parse_bool, metavar="True|False",
                   help="also mirror the dependency closure of the --only_spec selection")
    f.add_argument("--include_archive", "--include-archive", dest="include_archive", nargs="?", const=True,
                   default=None, type=parse_bool, metavar="True|False",
                   help="[CRAN] also mirror older versions from src/contrib/Archive/<pkg>/")
    f.add_argument("--cve_score", type=parse_score, default=argparse.SUPPRESS,
                   help="only files with a CVE score below this (0-10)")
    f.add_argument("--exclude_uncurated_cve_packages", nargs="?", const=True, default=None, type=parse_bool,
                   metavar="True|False", help="leave out files with uncurated CVEs")
    f.add_argument("--date_from", help="published (python: uploaded) on or after YYYY-MM-DD (window of at most a year)")
    f.add_argument("--date_to", help="published (python: uploaded) on or before YYYY-MM-DD")
    f.add_argument("--only_signed", nargs="?", const=True, default=None, type=parse_bool,
                   metavar="True|False", help="only signed packages")
    p.add_argument("--json", action="store_true", help="print JSON")
    # `--show NAME --channel CH PROPERTY...`: properties given after the other options.
    p.add_argument("properties", nargs="*", metavar="PROPERTY", help=argparse.SUPPRESS)
    p.set_defaults(func=run)
    _accept_dash_values(p)


def looks_like_licenses(arg: str) -> bool:
    items = [i.strip().lstrip("+-").lower().replace("-", "_") for i in arg.split(",") if i.strip()]
    return bool(items) and all(i in LICENSES for i in items)


def _is_dash_value(parser: argparse.ArgumentParser, arg: str) -> bool:
    """A "-xyz" argument that names no option of ours is a value (e.g. "-GPL3,MIT" or "-gpl,mit"),
    so the server-side check can say which license family is unknown instead of argparse's
    "expected one argument"."""
    if looks_like_licenses(arg):
        return True
    if arg.startswith("--") or len(arg) < 2 or arg[:2] in parser._option_string_actions:
        return False
    return bool(_DASH_VALUE.match(arg))


_DASH_VALUE = re.compile(r"^-[A-Za-z_][A-Za-z0-9_.+-]*(,[ +-]*[A-Za-z0-9_.+-]*)*$")


def _accept_dash_values(parser: argparse.ArgumentParser) -> None:
    """Let `--licenses "-gpl3,mit"` work as documented: argparse would take "-gpl3,mit" for an option."""
    original = parser._parse_optional

    def parse_optional(arg_string: str) -> Any:
        if arg_string.startswith("-") and _is_dash_value(parser, arg_string):
            return None  # a positional value, i.e. the argument of --licenses
        return original(arg_string)

    parser._parse_optional = parse_optional  # type: ignore[method-assign]


# --- building the request ------------------------------------------------------------------------

def strip_quotes(text: str) -> str:
    return text.strip().strip(QUOTES).strip()


def split_licenses(text: str) -> tuple[list[str], list[str]]:
    """'-gpl3,mit' -> (include, exclude); typographic quotes around the list or an item are dropped,
    and an unknown family is named as it was typed."""
    include, exclude = [], []
    for raw in strip_quotes(text).split(","):
        item = strip_quotes(raw)
        if not item:
            continue
        name = item.lstrip("+-").strip().lower().replace("-", "_")
        if name not in LICENSES:
            raise InvalidInput(f"Unknown license family {item.lstrip('+-').strip()!r} "
                               f"(in --licenses {text.strip()!r})",
                               "Use one of: " + ", ".join(LICENSES) + "; prefix '-' to exclude",
                               code="invalid_license")
        (exclude if item.startswith("-") else include).append(name)
    return include, exclude


def _items(text: str) -> list[str]:
    return [s for s in (strip_quotes(x) for x in strip_quotes(text).split(",")) if s]


def filters_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Only the filters given on the command line (so --update changes just those). One rule for
    every filter: an empty value ("" or False) clears it."""
    only = [s for s in map(strip_quotes, args.only_spec) if s]
    if only and ([s for s in args.exclude_spec if strip_quotes(s)] or [s for s in args.include_spec
                                                                      if strip_quotes(s)]):
        raise InvalidInput("--only_spec cannot be combined with --exclude_spec or --include_spec",
                           "Use either --only_spec, or --exclude_spec with --include_spec",
                           code="invalid_filters")
    out: dict[str, Any] = {}
    if args.subdirs is not None:
        out["subdirs"] = _items(args.subdirs)
    if args.projects is not None:
        out["projects"] = _items(args.projects)
    for key in ("python_tags", "platform_tags"):
        if getattr(args, key, None) is not None:
            out[key] = _items(getattr(args, key))
    if args.licenses is not None:
        out["include_licenses"], out["exclude_licenses"] = split_licenses(args.licenses)
    for key, value in (("only_specs", args.only_spec), ("exclude_specs", args.exclude_spec),
                       ("include_specs", args.include_spec)):
        if value:  # given at least once; `--only_spec ""` alone clears the list
            out[key] = [s for s in map(strip_quotes, value) if s]
    # Only the dates given: `--update M --date_to D` keeps the mirror's date_from (the server
    # still refuses a window with one end missing, on create as on update). An empty date clears
    # the window (both ends: a window with one end is not a window).
    for key in ("date_from", "date_to"):
        value = getattr(args, key)
        if value is not None:
            value = strip_quotes(value)
            if not value:
                out["date_from"] = out["date_to"] = None
                break
            out[key] = value
    if hasattr(args, "cve_score"):
        out["cve_score_threshold"] = args.cve_score  # None clears it
    for flag, key in (("exclude_uncurated_cve_packages", "exclude_non_curated_cve"),
                      ("only_signed", "only_signed"), ("include_dependencies", "include_dependencies"),
                      ("include_archive", "include_archive")):
        value = getattr(args, flag)
        if value is not None:
            out[key] = bool(value)
    return out


# Accepted for compatibility with Anaconda Server scripts, stored, but not applied by this server:
# it has no CVE data and no signatures yet. Saying so beats a silently unfiltered mirror.
NOT_APPLIED = (("cve_score", "--cve_score"), ("exclude_uncurated_cve_packages", "--exclude_uncurated_cve_packages"),
               ("only_signed", "--only_signed"), ("projects", "--projects"))


def not_applied_warnings(args: argparse.Namespace) -> list[str]:
    given = [flag for attr, flag in NOT_APPLIED if getattr(args, attr, None) not in (None, False, "")]
    if not given:
        return []
    return [f"{', '.join(given)}: stored but not applied to conda mirrors by this server "
            "(no CVE data, signatures or PyPI projects here); the mirror is not filtered by them"]


def _need_channel(args: argparse.Namespace, action: str) -> str:
    if not args.channel:
        raise InvalidInput(f"--{action} needs --channel", "Add --channel CHANNEL", code="missing_channel")
    return str(args.channel)


# --- finding mirrors -----------------------------------------------------------------------------

def normalize(item: dict[str, Any], channel: str | None = None) -> dict[str, Any]:
    """One shape for both API forms (per-channel mirror_* keys, global plain keys)."""
    if "mirror_id" in item:
        return {"id": item["mirror_id"], "name": item.get("mirror_name"), "type": item.get("mirror_type"),
                "mode": item.get("mirror_mode"), "channel": item.get("channel") or channel,
                **{k: item.get(k) for k in ("source_root", "state", "proxy", "cron", "filters",
                                            "last_run_at", "created_at", "updated_at", "sync_state")}}
    ch = item.get("channel") or {}
    path = ch.get("name", "") if isinstance(ch, dict) else str(ch)
    if isinstance(item.get("subchannel"), dict):
        path += "/" + item["subchannel"]["name"]
    return {**item, "channel": path}


def find(ctx: Context, name: str, channel: str | None) -> dict[str, Any]:
    if channel:
        items = [normalize(i, channel) for i in items_of(api.list_mirrors(ctx.client, channel))]
    else:
        items = [normalize(i) for i in items_of(api.list_all_mirrors(ctx.client, 0, 10000))]
    found = [m for m in items if m.get("name") == name or m.get("id") == name]
    if not found:
        where = f" in channel {channel!r}" if channel else ""
        raise NotFound(f"No mirror named {name!r}{where}", "List mirrors with `conda-repo mirror --list-all`",
                       code="mirror_not_found")
    if len(found) > 1:
        raise InvalidInput(f"Several mirrors are named {name!r}: in " + ", ".join(m["channel"] for m in found),
                           "Add --channel CHANNEL", code="ambiguous_mirror")
    return found[0]


# --- actions -------------------------------------------------------------------------------------

def _admin_only(ctx: Context, err: TaipanError) -> TaipanError:
    """A manage action refused for a missing scope, by a user who is no admin: say the real reason."""
    if not (isinstance(err, Forbidden) and err.code == "insufficient_scope"):
        return err
    try:
        roles = ctx.client.account().get("roles") or []
    except TaipanError:
        return err
    if "admin" in roles:
        return err
    return Forbidden("Only administrators can manage mirrors",
                     "Ask an administrator to create or change the mirror", code="admin_required")


def _find_to_manage(ctx: Context, name: str, channel: str | None) -> dict[str, Any]:
    try:
        return find(ctx, name, channel)
    except TaipanError as err:
        raise _admin_only(ctx, err) from None


def wait_first_contact(ctx: Context, channel: str, mirror_id: str, name: str,
                       timeout: float = FIRST_CONTACT_SECONDS) -> dict[str, Any] | None:
    """After --run_now: wait until the run has heard from the upstream (or ended). A run that
    could not reach it raises with the mirror's own error; the mirror itself stays (state failed)."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        m = normalize(api.get_mirror(ctx.client, channel, mirror_id), channel)
        s = m.get("sync_state") or {}
        if m.get("state") in ("failed", "stopped"):
            raise UpstreamError(
                f"Mirror {name} {m.get('state')}: {s.get('last_exception') or 'no reason given'}",
                f"The mirror was kept (state {m.get('state')}); fix it with `conda-repo mirror --update "
                f"{name} --channel {channel} --source URL`, then `--restart {name}`",
                code="mirror_run_failed")
        if m.get("state") == "completed" or s.get("upstream_contacted"):
            return m
        if time.monotonic() > deadline:
            ctx.out.warn(f"Mirror {name} has not reached its upstream after {int(timeout)} s; "
                         f"follow it with `conda-repo mirror --sync-state {name} --channel {channel}`")
            return None
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)


def create(ctx: Context, args: argparse.Namespace) -> None:
    channel = _need_channel(args, "create")
    if not args.source:
        raise InvalidInput("--create needs --source URL", "Give the upstream channel URL",
                           code="missing_source")
    body: dict[str, Any] = {"mirror_name": args.create, "source_root": args.source,
                            "mirror_mode": args.mode or "passive", "cron": args.cron,
                            "mirror_type": args.type, "filters": filters_from_args(args),
                            "run_now": args.run_now}
    if args.proxy:
        body["proxy"] = args.proxy
    for warning in not_applied_warnings(args):
        ctx.out.warn(warning)
    try:
        m = normalize(api.create_mirror(ctx.client, channel, body), channel)
    except TaipanError as err:
        raise _admin_only(ctx, err) from None
    if args.run_now:
        m = wait_first_contact(ctx, channel, m["id"], m["name"]) or m
    if args.json:
        return ctx.out.json(m)
    ctx.out.success(f"Mirror {m['name']} created in {channel}" + (" and started" if args.run_now else
                                                                 f"; it runs at '{m['cron']}'"))


def update(ctx: Context, args: argparse.Namespace) -> None:
    channel = _need_channel(args, "update")
    m = _find_to_manage(ctx, args.update, channel)
    body: dict[str, Any] = {"run_now": args.run_now}
    if args.name:
        body["mirror_name"] = args.name
    if args.source:
        body["source_root"] = args.source
    if args.mode:
        body["mirror_mode"] = args.mode
    if args.type:
        body["mirror_type"] = args.type
    if args.cron and args.cron != DEFAULT_CRON:  # the argparse default means "not given"
        body["cron"] = args.cron
    if args.proxy is not None:
        body["proxy"] = args.proxy
    changes = filters_from_args(args)
    if changes:
        merged = {**(m.get("filters") or {}), **changes}
        # --only_spec and --exclude/--include_spec exclude each other: setting one drops the other.
        if changes.get("only_specs"):
            merged.pop("exclude_specs", None), merged.pop("include_specs", None)
        if changes.get("exclude_specs") or changes.get("include_specs"):
            merged.pop("only_specs", None)
        body["filters"] = {k: v for k, v in merged.items() if v is not None and v is not False and v != []}
    for warning in not_applied_warnings(args):
        ctx.out.warn(warning)
    try:
        out = normalize(api.update_mirror(ctx.client, channel, m["id"], body), channel)
    except TaipanError as err:
        raise _admin_only(ctx, err) from None
    if args.run_now:
        out = wait_first_contact(ctx, channel, out["id"], out["name"]) or out
    if args.json:
        return ctx.out.json(out)
    ctx.out.success(f"Mirror {out['name']} updated" + (" and started" if args.run_now else ""))


def delete(ctx: Context, args: argparse.Namespace) -> None:
    channel = _need_channel(args, "delete")
    m = _find_to_manage(ctx, args.delete, channel)
    try:
        api.delete_mirror(ctx.client, channel, m["id"])
    except TaipanError as err:
        raise _admin_only(ctx, err) from None
    ctx.out.success(f"Mirror {m['name']} deleted from {channel}")


def stop(ctx: Context, args: argparse.Namespace) -> None:
    m = _find_to_manage(ctx, args.stop, args.channel)
    if m.get("state") not in ("running", "pending"):
        raise Conflict(f"Mirror {m['name']} is {m.get('state')}, not running",
                       "Only a running or pending sync can be stopped", code="mirror_not_running")
    try:
        api.stop_mirror(ctx.client, m["channel"], m["id"])
    except TaipanError as err:
        raise _admin_only(ctx, err) from None
    ctx.out.success(f"Stop requested for mirror {m['name']}")


def restart(ctx: Context, args: argparse.Namespace) -> None:
    m = _find_to_manage(ctx, args.restart, args.channel)
    try:
        api.update_mirror(ctx.client, m["channel"], m["id"], {"run_now": True})
    except TaipanError as err:
        raise _admin_only(ctx, err) from None
    ctx.out.success(f"Mirror {m['name']} restarted")


def _step_line(s: dict[str, Any]) -> str:
    if not s.get("current_step_number"):
        return ""
    return (f"{s.get('current_step_number')}/{s.get('total_steps_count')} "
            f"{s.get('current_step_description', '')} ({s.get('current_step_percentage', 0)}%)")


def sync_state_lines(s: dict[str, Any]) -> list[tuple[str, Any]]:
    count = s.get("count") or {}
    rows: list[tuple[str, Any]] = [("step", _step_line(s)), ("last ckey", s.get("last_ckey")),
                                   ("last exception", s.get("last_exception"))]
    rows += [(k, count.get(k, 0)) for k in ("active", "passive", "failed", "removed", "conflicts", "invalid")]
    if s.get("conflicts"):
        rows.append(("conflicting files", ", ".join(s["conflicts"])
                     + (" ..." if count.get("conflicts", 0) > len(s["conflicts"]) else "")))
    if s.get("invalid_records"):
        rows.append(("invalid records", "; ".join(s["invalid_records"])
                     + (" ..." if count.get("invalid", 0) > len(s["invalid_records"]) else "")))
    for level in ("mirror_filtered", "channel_filtered"):
        for k, v in (count.get(level) or {}).items():
            rows.append((f"{level}.{k}", v))
    if s.get("upstream_records") is not None:
        rows.append(("upstream records", s.get("upstream_records")))
        rows.append(("selected", s.get("selected")))
    if s.get("filter_rate"):
        rows.append(("filter rate", f"{s['filter_rate']} records/s"))
    return rows


def show(ctx: Context, args: argparse.Namespace) -> None:
    name, props = args.show[0], [*args.show[1:], *(getattr(args, "properties", None) or [])]
    m = find(ctx, name, args.channel)
    if props:
        unknown = [p for p in props if p not in SHOW_PROPS]
        if unknown:
            raise InvalidInput(f"Unknown property {unknown[0]!r}", "Use: " + ", ".join(SHOW_PROPS),
                               code="invalid_property")
        chosen = {p: m.get(SHOW_PROPS[p]) for p in props}
        if args.json:
            return ctx.out.json(chosen)
        ctx.out.line(yaml.safe_dump(chosen, sort_keys=False, default_flow_style=False,
                                    allow_unicode=True).rstrip("\n"))
        return None
    if args.json:
        return ctx.out.json(m)
    lines = ["Mirror Details:", "---------------"]
    lines += [f"{label}: {_text(m.get(key))}" for label, key in (
        ("id", "id"), ("name", "name"), ("channel", "channel"), ("type", "type"), ("mode", "mode"),
        ("state", "state"), ("source root", "source_root"), ("Last run at", "last_run_at"),
        ("Updated at", "updated_at"), ("created", "created_at"), ("cron", "cron"), ("proxy", "proxy"))]
    lines.append("filters:")
    lines += [f"    {k:<24} | {_text(v)}" for k, v in (m.get("filters") or {}).items()]
    lines.append("sync state:")
    rows = sync_state_lines(m.get("sync_state") or {})
    width = max(24, *(len(k) for k, _ in rows))
    lines += [f"    {k:<{width}} | {_text(v)}" for k, v in rows]
    for line in lines:
        ctx.out.line(line)
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    return str(value)


def sync_state(ctx: Context, args: argparse.Namespace) -> None:
    m = find(ctx, args.sync_state, args.channel)
    s = m.get("sync_state") or {}
    if args.json:
        return ctx.out.json(s)
    ctx.out.line(f"Sync state of {m['name']} ({m.get('state')}):")
    rows = sync_state_lines(s)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        ctx.out.line(f"    {k:<{width}} | {_text(v)}")
    return None


def list_mirrors(ctx: Context, args: argparse.Namespace) -> None:
    if args.list_all:
        items = [normalize(i) for i in items_of(api.list_all_mirrors(ctx.client, 0, 10000))]
    else:
        channel = args.list or _need_channel(args, "list")
        items = [normalize(i, channel) for i in items_of(api.list_mirrors(ctx.client, channel))]
    if args.json:
        return ctx.out.json(items)
    rows = [(m.get("name"), m.get("channel"), m.get("type"), m.get("mode"), m.get("state"),
             _step_line(m.get("sync_state") or {}), m.get("source_root"), m.get("cron"), m.get("last_run_at"))
            for m in items]
    ctx.out.table(["Name", "Channel", "Type", "Mode", "State", "Progress", "Source", "Cron", "Last run"], rows)
    ctx.out.info(f"{len(rows)} mirror(s)")
    return None


def run(ctx: Context, args: argparse.Namespace) -> None:
    extra = getattr(args, "properties", None) or []
    if extra and not args.show:
        raise InvalidInput(f"Unexpected argument(s): {' '.join(extra)}",
                           "Only --show NAME takes further words (the properties to show); quote a "
                           "value that contains spaces", code="invalid_arguments")
    if args.create:
        return create(ctx, args)
    if args.update:
        return update(ctx, args)
    if args.delete:
        return delete(ctx, args)
    if args.show:
        return show(ctx, args)
    if args.stop:
        return stop(ctx, args)
    if args.restart:
        return restart(ctx, args)
    if args.sync_state:
        return sync_state(ctx, args)
    return list_mirrors(ctx, args)
