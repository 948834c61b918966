"""`conda-repo cves`: list CVEs, show one (its CVSS2 and CVSS3 metrics), the files it affects, and
curate it (administrators)."""

from __future__ import annotations

import argparse
from typing import Any

from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.cli.paging import rest_note, window
from taipan.errors import InvalidInput

STATUSES = ("reported", "active", "cleared", "mitigated", "disputed")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cves", help="list, show and curate CVEs",
                              description="List the CVEs matched against the server's packages, show one, the "
                                          "files it affects, or set its curation status (administrators).")
    act = p.add_mutually_exclusive_group(required=True)
    act.add_argument("--list", action="store_true", help="list CVEs")
    act.add_argument("--show", metavar="CVE_ID", help="show a CVE with its CVSS2 and CVSS3 metrics")
    act.add_argument("--show-files", metavar="CVE_ID", help="list the files a CVE affects")
    act.add_argument("--curate", metavar="CVE_ID", help="set a CVE's curation status (with --status)")
    p.add_argument("--status", help=f"with --curate: {', '.join(STATUSES)}; with --list: only CVEs in this "
                   "status (or curated/uncurated)")
    p.add_argument("--note", default="", help="with --curate: why (kept in the CVE's history)")
    p.add_argument("--min-score", type=float, help="with --list: only CVEs scoring at least this")
    p.add_argument("--package", help="with --list: only CVEs affecting this package name")
    p.add_argument("--sort", default="-score", help="with --list: score, published, modified or id; prefix - "
                   "for descending (default: -score)")
    p.add_argument("-o", "--offset", type=int, default=0, help="skip this many items")
    p.add_argument("-l", "--limit", type=int, default=50, help="show at most this many items")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _score(cve: dict[str, Any]) -> tuple[Any, str]:
    if cve.get("cvssv3_score") is not None:
        return cve["cvssv3_score"], "CVSS3"
    if cve.get("cvssv2_score") is not None:
        return cve["cvssv2_score"], "CVSS2"
    return cve.get("score"), cve.get("score_type") or ""


def _date(value: Any) -> str:
    return str(value)[:10] if value else ""


def run(ctx: Context, args: argparse.Namespace) -> int:
    client = ctx.client
    if args.curate:
        if not args.status:
            raise InvalidInput("--curate needs --status", f"One of: {', '.join(STATUSES)}", code="usage")
        cve = client.curate_cve(args.curate, args.status, args.note)
        if args.json:
            ctx.out.json(cve)
        else:
            ctx.out.success(f"{cve['id']} is now {cve['status']}")
        return ExitCode.OK
    if args.show:
        cve = client.cve(args.show)
        if args.json:
            ctx.out.json(cve)
            return ExitCode.OK
        _show(ctx, cve)
        return ExitCode.OK
    if args.show_files:
        items, total = window(lambda o, n: client.cve_files(args.show_files, o, n), args.offset, args.limit)
        if args.json:
            ctx.out.json({"total_count": total, "items": items})
            return ExitCode.OK
        rows = [(i.get("parent_channel_name") + "/" + i["channel_name"] if i.get("parent_channel_name")
                 else i.get("channel_name"), i.get("artifact_family"), i.get("common_name"), i.get("ckey"),
                 i.get("cve_status"), i.get("cve_score")) for i in items]
        ctx.out.table(["Channel", "Family", "Name", "Ckey", "CVE status", "CVE score"], rows)
        _note(ctx, args, len(items), total, "files")
        return ExitCode.OK
    filters = {"status": args.status, "min_score": args.min_score, "package": args.package, "sort": args.sort}
    items, total = window(lambda o, n: client.cves(o, n, **filters), args.offset, args.limit)
    if args.json:
        ctx.out.json({"total_count": total, "items": items})
        return ExitCode.OK
    rows = []
    for cve in items:
        score, kind = _score(cve)
        rows.append((cve.get("id"), "yes" if cve.get("curated") else "no", cve.get("status"), score, kind,
                     _date(cve.get("published_at")), cve.get("packages_count")))
    ctx.out.table(["ID", "Curated", "Status", "Score", "Type", "Published", "Packages"], rows)
    _note(ctx, args, len(items), total, "CVEs")
    return ExitCode.OK


def _note(ctx: Context, args: argparse.Namespace, shown: int, total: int | None, noun: str) -> None:
    note = rest_note(args.offset, shown, total, noun)
    if note:
        ctx.out.info(note)


def _show(ctx: Context, cve: dict[str, Any]) -> None:
    score, kind = _score(cve)
    ctx.out.fields([("ID", cve.get("id")), ("Status", cve.get("status")),
                    ("Curated", "yes" if cve.get("curated") else "no"), ("Score", f"{score} ({kind})" if score
                                                                          is not None else "none"),
                    ("Severity", cve.get("severity")), ("Published", _date(cve.get("published_at"))),
                    ("Aliases", ", ".join(cve.get("aliases") or [])), ("Packages", cve.get("packages_count"))])
    ctx.out.line("")
    ctx.out.line((cve.get("description") or "").strip())
    for label, key, inner in (("CVSS3", "cvssv3", "cvssV3"), ("CVSS2", "cvssv2", "cvssV2"),
                              ("CVSS4", "cvssv4", "cvssV4")):
        metric = (cve.get(key) or {}).get(inner)
        if metric:
            ctx.out.line("")
            ctx.out.line(f"{label} metrics:")
            ctx.out.fields([(f"  {k}", v) for k, v in metric.items()])
    packages = cve.get("packages") or []
    if packages:
        ctx.out.line("")
        ctx.out.table(["Family", "Subdir", "Name", "Version", "SHA256"],
                      [(p.get("family"), p.get("subdir"), p.get("name"), p.get("version"), p.get("sha256"))
                       for p in packages], title="Affected packages")
    history = cve.get("history") or []
    if history:
        ctx.out.line("")
        ctx.out.table(["When", "Who", "From", "To", "Note"],
                      [(h.get("at", "")[:19], h.get("username"), h.get("old_status"), h.get("status"),
                        h.get("note")) for h in history], title="Curation history")

