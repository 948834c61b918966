"""What a serving process does after an upload before it can answer with the new index, in-process:
the refresh of a loaded publication (read the change from the log and the rows it names, apply it,
build and share the publication), and the first gzip coding of the new repodata.json.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_publish.py --records 1000000 --uploads 5
    PYTHONPATH=src .venv/bin/python benchmarks/bench_publish.py --records 1000000 --home DIR   # reuse a seed
    PYTHONPATH=src .venv/bin/python benchmarks/bench_publish.py --home DIR --cold --no-freeze  # as before

Seeds a home (SQLite, filesystem blobs; ~2 min at 1M) with a channel of N synthetic `noarch`
records, loads its publication (a build, or the stored one adopted when the home is reused), then
uploads `--uploads` real small packages through `services.uploads.upload` and after each times
`Indexer.publication` (the refresh a request or the refresher makes) and the gzip body of the new
`repodata.json` (made once per publication, by the first request that asks for it). Prints JSON:
per upload the seconds of each step, and their medians. The HTTP figure that contains both is
bench_compare.py's upload -> answered.

The process leaves its start's objects out of the garbage collector's full passes, as a server
process does (runtime.freeze_startup_objects); `--no-freeze` does not, for comparison. The full
passes made during each step are counted and timed (`gc_full`: count and seconds, with every
thread stopped). `--cold` removes the stored publication first, so that the first one is built
from every row, as on a first start.
"""

from __future__ import annotations

import argparse
import gc
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


class FullPasses:
    """The garbage collector's full passes (generation 2), counted and timed as they happen."""

    def __init__(self) -> None:
        self.count, self.seconds, self._started = 0, 0.0, 0.0
        gc.callbacks.append(self._observe)

    def _observe(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.count += 1
            self.seconds += time.perf_counter() - self._started

    def take(self) -> list[float]:
        """[count, seconds] since the last take."""
        taken = [self.count, round(self.seconds, 3)]
        self.count, self.seconds = 0, 0.0
        return taken


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100000)
    ap.add_argument("--uploads", type=int, default=5)
    ap.add_argument("--home", type=Path, help="a home seeded by an earlier run (kept; seeded when missing)")
    ap.add_argument("--cold", action="store_true", help="remove the stored publication: build the first one")
    ap.add_argument("--no-freeze", action="store_true", help="leave the start's objects in the collector's passes")
    args = ap.parse_args()
    from sqlalchemy import delete, select

    from taipan.db.migrate import upgrade
    from taipan.db.models import IndexPublication, User
    from taipan.domain.permissions import Principal
    from taipan.runtime import build_runtime, freeze_startup_objects
    from taipan.services import channels
    from taipan.settings import Settings

    home = args.home or Path(tempfile.mkdtemp(prefix="taipan-bench-publish-"))
    if not (home / "taipan.db").exists():
        seed_channel(home, CHANNEL, "noarch", args.records)
    settings = Settings(home=home)
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    if not args.no_freeze:
        freeze_startup_objects()
    passes = FullPasses()
    run = int(time.time())
    steps: dict[str, list[float]] = {"upload_s": [], "refresh_s": [], "gzip_s": []}
    gc_steps: list[list[float]] = []
    try:
        with rt.sessions() as db:
            if args.cold:
                db.execute(delete(IndexPublication))
                db.commit()
            admin = db.scalar(select(User).where(User.role == "admin"))
            p = Principal(user_id=admin.id, username=admin.username, role="admin", scopes=frozenset({"*"}),
                          kind="session")
            cid = channels.get_channel(db, CHANNEL).id
        passes.take()
        t0 = time.perf_counter()
        rt.indexer.publication(cid, "noarch")
        first = {"first_publication_s": round(time.perf_counter() - t0, 3),
                 "adopted": rt.indexer.adoptions, "built": rt.indexer.full_loads,
                 "first_gc_full": passes.take(), "gc_frozen_objects": gc.get_freeze_count()}
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
            gc_steps.append(passes.take())
            time.sleep(1)  # the background share of a large publication, as between real uploads
    finally:
        rt.close()
    emit({"records": args.records, "load_average": os.getloadavg(), "frozen": not args.no_freeze, **first,
          "runs": steps, "gc_full_per_upload": gc_steps,
          "median": {k: round(statistics.median(v), 4) for k, v in steps.items()}})


if __name__ == "__main__":
    main()
