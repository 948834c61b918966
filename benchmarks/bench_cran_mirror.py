"""A passive CRAN mirror sync of a CRAN-sized upstream.

    .venv/bin/python benchmarks/bench_cran_mirror.py [--packages 22000] [--runs 2]

Writes a synthetic CRAN-like tree (``src/contrib/PACKAGES`` and ``PACKAGES.gz`` as
``tools::write_PACKAGES`` writes them: Depends, Imports with three packages, Suggests, LinkingTo on a
quarter, License, MD5sum, NeedsCompilation; no package files, a passive sync never reads them), serves
it with a threaded ``http.server`` on 127.0.0.1, starts ``taipan serve`` (in-process jobs, SQLite) and
times ``POST /api/channels/<ch>/mirrors`` (``--type CRAN``, passive, run_now) until the mirror is
``completed`` and until the channel's ``src/contrib/PACKAGES.gz`` lists every package; then the same
with ``only_specs`` of 20 packages and ``include_dependencies``.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_mirror import admin_client, serve_dir, start_taipan  # noqa: E402


def stanza(i: int, n: int) -> str:
    deps = ", ".join(f"pkg{(i + k) % n:05d} (>= 1.0)" for k in (1, 7, 31))
    lines = [f"Package: pkg{i:05d}", f"Version: {1 + i % 5}.{i % 13}-{i % 3}",
             "Depends: R (>= 3.5.0), methods", f"Imports: {deps}",
             "Suggests: testthat (>= 3.0.0), knitr, rmarkdown"]
    if i % 4 == 0:
        lines.append("LinkingTo: Rcpp")
    lines += ["License: " + ("GPL-2 | GPL-3" if i % 3 else "MIT + file LICENSE"), f"MD5sum: {i:032x}",
              f"NeedsCompilation: {'yes' if i % 4 == 0 else 'no'}"]
    return "\n".join(lines) + "\n"


def write_tree(root: Path, n: int) -> None:
    contrib = root / "src" / "contrib"
    contrib.mkdir(parents=True)
    text = "\n".join(stanza(i, n) for i in range(n)).encode()
    (contrib / "PACKAGES").write_bytes(text)
    (contrib / "PACKAGES.gz").write_bytes(gzip.compress(text, 6))


def timed(c: httpx.Client, url: str, upstream: str, channel: str, filters: dict[str, Any],
          expect: int | None) -> dict[str, Any]:
    assert c.post("/channels", json={"name": channel}).status_code == 201
    start = time.perf_counter()
    r = c.post(f"/channels/{channel}/mirrors", json={"mirror_name": "bench", "mirror_type": "CRAN",
                                                     "source_root": upstream, "run_now": True, "filters": filters})
    assert r.status_code == 201, r.text
    while True:
        m = c.get(f"/channels/{channel}/mirrors/bench").json()
        if m["state"] in ("completed", "failed", "stopped"):
            break
        time.sleep(0.05)
    synced = time.perf_counter() - start
    assert m["state"] == "completed", m
    while True:
        got = c.get(f"{url}/repo/{channel}/src/contrib/PACKAGES.gz")
        listed = gzip.decompress(got.content).count(b"Package: ") if got.status_code == 200 else 0
        if expect is None or listed >= expect:
            break
        time.sleep(0.05)
    return {"sync_s": synced, "visible_s": time.perf_counter() - start, "listed": listed,
            "selected": m["sync_state"].get("selected")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=22_000)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_tree(root / "upstream", args.packages)
        size = (root / "upstream/src/contrib/PACKAGES").stat().st_size
        print(f"upstream: {args.packages:,} packages, PACKAGES {size / 1e6:.1f} MB")
        httpd, upstream = serve_dir(root / "upstream")
        (root / "home").mkdir()
        proc, url = start_taipan(root / "home")
        only = [f"pkg{i * 997 % args.packages:05d}" for i in range(20)]
        try:
            with admin_client(url) as c:
                for label, filters, expect in (
                        ("no filter", {}, args.packages),
                        ("20 only_specs + dependencies", {"only_specs": only, "include_dependencies": True}, None)):
                    results = [timed(c, url, upstream, f"bench-cran-{label[:2].strip()}-{i}", filters, expect)
                               for i in range(args.runs)]
                    print(f"passive CRAN sync, {label}: median "
                          f"{statistics.median(r['sync_s'] for r in results):.2f} s to completed, "
                          f"{statistics.median(r['visible_s'] for r in results):.2f} s until PACKAGES.gz lists "
                          f"{results[0]['listed']:,}; runs " + ", ".join(f"{r['sync_s']:.2f}" for r in results))
        finally:
            proc.terminate()
            proc.wait(30)
            httpd.shutdown()


if __name__ == "__main__":
    main()
