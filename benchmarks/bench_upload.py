"""The service work of one upload into a channel of N records, in-process (no HTTP).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_upload.py --records 100000 --uploads 9
    PYTHONPATH=src .venv/bin/python benchmarks/bench_upload.py --records 100000 --cve-threshold 7

Seeds a home (SQLite, filesystem blobs) with a channel of N synthetic `noarch` records, then uploads
`--uploads` real small packages through `services.uploads.upload` as the upload endpoint calls it
(spool, checks, rows, CVE match, commit), timing each. The first upload of the process is reported
apart (imports, first queries). Prints JSON: median, min and max seconds of the others. What the
HTTP server adds is measured by bench_compare.py's upload -> visible. ``--cve-threshold`` gives the
channel a CVE filter (``cve_score_threshold``) first: the CVE filters are then enforced after each
upload's CVE match.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_compare import CHANNEL, build_pkg  # noqa: E402
from common import emit, seed_channel  # noqa: E402


def upload_in_process(rt: Any, p: Any, pkg: Path) -> None:
    """One upload of ``pkg`` into CHANNEL as the upload endpoint makes it (spool, checks, rows, CVE
    match, commit), by the principal ``p``."""
    from taipan.services import channels, uploads

    with rt.sessions() as db, open(pkg, "rb") as fh:
        spooled = uploads.spool(fh, rt.blobs.tempdir(), 10**9)
        try:
            uploads.upload(db, rt.blobs, p, channels.get_channel(db, CHANNEL), spooled, pkg.name,
                           filetype="conda1")
            db.commit()
        finally:
            spooled.discard()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--uploads", type=int, default=9)
    ap.add_argument("--cve-threshold", type=float, default=None)
    args = ap.parse_args()
    from sqlalchemy import select

    from taipan.db.models import User
    from taipan.domain.permissions import Principal
    from taipan.runtime import build_runtime
    from taipan.services import channels
    from taipan.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="taipan-bench-upload-"))
    seed_channel(home, CHANNEL, "noarch", args.records)
    rt = build_runtime(Settings(home=home))
    try:
        with rt.sessions() as db:
            admin = db.scalar(select(User).where(User.role == "admin"))
            p = Principal(user_id=admin.id, username=admin.username, role="admin", scopes=frozenset({"*"}),
                          kind="session")
            if args.cve_threshold is not None:
                channels.update_channel(db, p, channels.get_channel(db, CHANNEL),
                                        {"filters": {"cve_score_threshold": args.cve_threshold}})
                db.commit()
        times = []
        for i in range(args.uploads + 1):
            pkg = build_pkg(home / f"new{i}", f"uploaded{i}")
            t0 = time.perf_counter()
            upload_in_process(rt, p, pkg)
            times.append(time.perf_counter() - t0)
    finally:
        rt.close()
    rest = times[1:]
    emit({"records": args.records, "cve_threshold": args.cve_threshold, "load_average": os.getloadavg(),
          "first_s": round(times[0], 4),
          "median_s": round(statistics.median(rest), 4), "min_s": round(min(rest), 4),
          "max_s": round(max(rest), 4)})


if __name__ == "__main__":
    main()
