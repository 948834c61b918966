"""`conda-repo report`: save the download-history report of a date range (at most one year).

    conda repo report --date_from 2023-01-01 --date_to 2023-03-30 --file-type json \\
        --user_names user1, user2 --channels anaconda, snakes --filename usage_Q1_2023

Lists may be written with or without spaces after the commas. The report is streamed to
``--filename`` (its extension added when missing; a path works), else to
``artifact_downloads_<from>_<to>.<type>`` in the current directory.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime
from pathlib import Path

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.errors import InvalidInput


def _date(value: str) -> str:
    try:
        return date.fromisoformat(value.strip()).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="download the download-history report",
                              description="Save who downloaded which packages, from which channels, when (with "
                                          "the CVEs known for them), for a date range of at most one year.")
    p.add_argument("--date_from", "--date-from", dest="date_from", required=True, type=_date, metavar="YYYY-MM-DD",
                   help="the first day of the report")
    p.add_argument("--date_to", "--date-to", dest="date_to", type=_date, metavar="YYYY-MM-DD",
                   help="the last day of the report (default: today)")
    p.add_argument("--file-type", "--file_type", dest="file_type", choices=("json", "csv"), default="json",
                   help="json (default) or csv")
    p.add_argument("--user_names", "--user-names", dest="user_names", nargs="*", default=[], metavar="USERS",
                   help="only these users: a comma-separated list (\"anonymous\" for downloads without sign-in)")
    p.add_argument("--channels", nargs="*", default=[], metavar="CHANNELS",
                   help="only these channels (with their subchannels): a comma-separated list")
    p.add_argument("--filename", metavar="REPORT", help="the file to write (default: in the current directory)")
    p.set_defaults(func=run)


def comma_list(words: list[str]) -> list[str]:
    """`a, b, c` arrives as ['a,', 'b,', 'c'] and `a,b` as ['a,b']: the same list either way."""
    return [n.strip() for n in ",".join(words).split(",") if n.strip()]


def report_path(filename: str | None, default: str, ext: str) -> Path:
    path = Path(filename).expanduser() if filename else Path.cwd() / default
    if path.is_dir():
        path = path / default
    if not path.name.lower().endswith("." + ext):
        path = path.with_name(path.name + "." + ext)
    if not path.parent.is_dir():
        raise InvalidInput(f"No such directory: {path.parent}", "Create it first, or give another --filename",
                           code="no_such_directory")
    return path


def run(ctx: Context, args: argparse.Namespace) -> int:
    date_to = args.date_to or datetime.now(UTC).date().isoformat()
    body: dict[str, object] = {"from_date": args.date_from, "to_date": date_to, "download_as": args.file_type}
    if users := comma_list(args.user_names):
        body["user_names"] = users
    if channels := comma_list(args.channels):
        body["channel_names"] = channels
    path = report_path(args.filename, f"artifact_downloads_{args.date_from}_{date_to}.{args.file_type}",
                       args.file_type)
    ctx.client.stream_to("POST", "/reports/artifact_downloads", path, json=body,
                         headers={"Accept": "application/json" if args.file_type == "json" else "text/csv"})
    ctx.out.success(f"Report saved to {path}")
    return ExitCode.OK
