"""`taipan cve`: import CVE data (the air-gapped path), sync it from the configured feeds, rematch
every file, and edit the CPE product -> package names mapping."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from taipan.admin.main import EXTRA_COMMANDS
from taipan.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="cve_command", required=True)
    imp = sub.add_parser("import", help="import NVD API 2.0 JSON feeds (plain or .gz) and OSV advisories "
                         "(JSON, a list, or an osv.dev .zip); files or directories")
    imp.add_argument("paths", nargs="+", type=Path)
    imp.add_argument("--no-match", action="store_true", help="do not rematch files afterwards")
    imp.set_defaults(cve_run=_import)
    match = sub.add_parser("match", help="rematch every file against the CVE store")
    match.set_defaults(cve_run=_match)
    syn = sub.add_parser("sync", help="fetch what changed from the NVD API (TAIPAN_CVE__NVD_URL) and the OSV "
                         "files (TAIPAN_CVE__OSV_URLS) and import it")
    syn.set_defaults(cve_run=None)
    mp = sub.add_parser("map", help="show or edit the CPE vendor:product -> package names mapping")
    act = mp.add_mutually_exclusive_group(required=True)
    act.add_argument("--list", nargs="?", const="", metavar="TEXT", help="list the mapping (entries containing TEXT)")
    act.add_argument("--set", nargs="+", metavar=("VENDOR:PRODUCT", "PACKAGE"),
                     help="map a product to these package names (none: to no package)")
    act.add_argument("--remove", metavar="VENDOR:PRODUCT", help="drop an admin entry (the shipped one applies)")
    mp.set_defaults(cve_run=_map)
    for p in (imp, match, mp, syn):
        p.add_argument("--json", action="store_true", help="print the result as JSON")


def _admin() -> Any:
    from taipan.domain.permissions import Principal
    return Principal(user_id="cli", username="taipan-cli", role="admin", scopes=frozenset({"*"}), kind="session")


def _import(args: argparse.Namespace, db: Any) -> Any:
    from taipan.services import cve_import
    return cve_import.import_paths(db, args.paths, match=not args.no_match)


def _match(args: argparse.Namespace, db: Any) -> Any:
    from taipan.services import cve_matching
    return cve_matching.match_files(db, None)


def _map(args: argparse.Namespace, db: Any) -> Any:
    from taipan.services import cves
    if args.set:
        return cves.set_mapping(db, _admin(), args.set[0], args.set[1:])
    if args.remove:
        return cves.delete_mapping(db, _admin(), args.remove)
    return cves.list_mappings(db, _admin(), args.list or None)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from taipan.db.migrate import upgrade
    from taipan.runtime import build_runtime

    upgrade(settings.database_url)
    rt = build_runtime(settings)
    if args.cve_run is None:
        return _sync(args, rt)
    try:
        with rt.sessions() as db:
            try:
                result = args.cve_run(args, db)
                db.commit()
            except BaseException:
                db.rollback()
                raise
    finally:
        rt.engine.dispose()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif isinstance(result, list):
        for row in result:
            print(f"{row['product']}\t{', '.join(row['packages']) or '(no package)'}\t{row['source']}")
    else:
        print(_describe(result), file=sys.stderr)
    return 0


def _sync(args: argparse.Namespace, rt: Any) -> int:
    from taipan.services import cve_sync

    try:
        results = cve_sync.sync(rt.sessions, rt.settings.cve)
    finally:
        rt.engine.dispose()
    if not results:
        print("Nothing to sync: set TAIPAN_CVE__NVD_URL and/or TAIPAN_CVE__OSV_URLS", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(results, indent=2, default=str))
    for url, result in results.items():
        where = url.split("?", 1)[0]
        if not result.get("ok"):
            print(f"{where}: failed: {result.get('error')}", file=sys.stderr)
        elif result.get("not_modified"):
            print(f"{where}: not modified", file=sys.stderr)
        else:
            print(f"{where}: {_describe(result)}", file=sys.stderr)
    return 0 if all(r.get("ok") for r in results.values()) else 1


def _describe(result: dict[str, Any]) -> str:
    parts = []
    if "records" in result:
        parts.append(f"{result['records']} record(s): {result['added']} new, {result['updated']} updated, "
                     f"{result['unchanged']} unchanged")
    matching = result.get("matching", result if "files_with_cves" in result else None)
    if matching:
        parts.append(f"matched {matching.get('files', 0)} file(s): {matching.get('files_with_cves', 0)} with CVEs, "
                     f"{matching.get('changed', 0)} changed")
    if "product" in result:
        parts.append(f"{result['product']} -> {', '.join(result['packages']) or '(no package)'}")
    return "; ".join(parts) or json.dumps(result, default=str)


EXTRA_COMMANDS["cve"] = ("the CVE store: import, sync, match, map", add_arguments, run)

_main = sys.modules.get("__main__")
if getattr(_main, "EXTRA_COMMANDS", None) is not None and _main.EXTRA_COMMANDS is not EXTRA_COMMANDS:  # type: ignore[union-attr]
    _main.EXTRA_COMMANDS["cve"] = EXTRA_COMMANDS["cve"]  # type: ignore[union-attr]
