"""What a serving process does after an upload before it can answer with the new index, in-process:
the refresh of a loaded publication (read the change from the log and the rows it names, apply it,
build and share the publication), and the first gzip coding of the new repodata.json.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_publish.py --records 1000000 --uploads 5
    PYTHONPATH=src .venv/bin/python benchmarks/bench_publish.py --records 1000000 --home DIR   # reuse a seed

Seeds a home (SQLite, filesystem blobs; ~2 min at 1M) with a channel of N synthetic `noarch`
records, loads its publication (a build, or the stored one adopted when the home is reused), then
uploads `--uploads` real small packages through `services.uploads.upload` and after each times
`Indexer.publication` (the refresh a request or the refresher makes) and the gzip body of the new
`repodata.json` (made once per publication, by the first request that asks for it). Prints JSON:
per upload the seconds of each step, and their medians. The HTTP figure that contains both is
bench_compare.py's upload -> answered.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_compare import CHANNEL, build_pkg  # noqa: E402
from bench_upload import upload_in_process  # noqa: E402
from common import emit, seed_channel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--uploads", type=int, default=5)
    ap.add_argument("--home", type=Path, help="a home seeded by an earlier run (kept; seeded when missing)")
    args = ap.parse_args()
    from sqlalchemy import select

    from taipan.db.migrate import upgrade
    from taipan.db.models import User
    from taipan.domain.permissions import Principal
    from taipan.runtime import build_runtime
    from taipan.services import channels
    from taipan.settings import Settings

    home = args.home or Path(tempfile.mkdtemp(prefix="taipan-bench-publish-"))
    if not (home / "taipan.db").exists():
        seed_channel(home, CHANNEL, "noarch", args.records)
    settings = Settings(home=home)
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    run = int(time.time())
    steps: dict[str, list[float]] = {"upload_s": [], "refresh_s": [], "gzip_s": []}
    try:
        with rt.sessions() as db:
            admin = db.scalar(select(User).where(User.role == "admin"))
            p = Principal(user_id=admin.id, username=admin.username, role="admin", scopes=frozenset({"*"}),
                          kind="session")
            cid = channels.get_channel(db, CHANNEL).id
        t0 = time.perf_counter()
        rt.indexer.publication(cid, "noarch")
        first = {"first_publication_s": round(time.perf_counter() - t0, 3),
                 "adopted": rt.indexer.adoptions, "built": rt.indexer.full_loads}
        for i in range(args.uploads):
            pkg = build_pkg(home / f"new{run}-{i}", f"published{run}x{i}")
            t0 = time.perf_counter()
            upload_in_process(rt, p, pkg)
            rt.indexer.notify(cid, {"noarch"})
            t1 = time.perf_counter()
            pub = rt.indexer.publication(cid, "noarch")
            t2 = time.perf_counter()
            pub.encoded("repodata.json", "gzip")
            t3 = time.perf_counter()
            for key, v in (("upload_s", t1 - t0), ("refresh_s", t2 - t1), ("gzip_s", t3 - t2)):
                steps[key].append(round(v, 4))
            time.sleep(1)  # the background share of a large publication, as between real uploads
    finally:
        rt.close()
    emit({"records": args.records, "load_average": os.getloadavg(), **first, "runs": steps,
          "median": {k: round(statistics.median(v), 4) for k, v in steps.items()}})


if __name__ == "__main__":
    main()
