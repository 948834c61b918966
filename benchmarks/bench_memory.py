"""Memory of one `taipan serve` worker at each step of serving a large conda subdir.

    .venv/bin/python benchmarks/bench_memory.py --records 100000 [--seconds 3] [--home DIR]
    TAIPAN_SERVER__MALLOC_ARENAS=0 TAIPAN_SERVER__MALLOC_TRIM_SECONDS=0 .venv/bin/python benchmarks/bench_memory.py

Issue 13 asks for RSS per worker <= 150 MB at 100k records. Prints the resident memory (total,
anonymous, file-backed, in MB) of the server's largest process (its worker, when the HTTP server runs
workers in processes of their own; ``VmRSS_all_processes`` adds the others) for an idle server
with an empty home, then on a home seeded with N records: idle, after the first (cold) build, after
three uploads and their publishes, after a wrk load (-t2 -c32) of each kind a client sends (a 1 MiB
package, `repodata.json` with gzip, `.zst`, a 304 revalidation, one shard, the whole `repodata.json`
without compression), and again `--settle` seconds later (the periodic malloc_trim). Each load also
reports the server's CPU time per request (from /proc, less sensitive to other processes on the
machine than req/s). The server's environment is this one's, so TAIPAN_SERVER__* settings compare configurations.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import msgpack

sys.path.insert(0, str(Path(__file__).parent))
from bench_index import RUN, build_pkg, forget_publications, unzst, wait_for_pointer  # noqa: E402
from bench_packages import build_package  # noqa: E402
from common import Server, emit, have, seed_channel, wrk  # noqa: E402


def tree(pid: int) -> list[int]:
    """A process and all its descendants (a server's supervisor and its workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [int(c) for c in subprocess.run(["pgrep", "-P", str(p)], capture_output=True,
                                                text=True).stdout.split()]
    return out


def memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of the largest process of the server (its worker, with a server
    that runs workers in processes of their own), in MB, and the VmRSS of all its processes."""
    per_process = []
    for p in tree(pid):
        out = {}
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = round(int(value.split()[0]) / 1024, 1)
        except FileNotFoundError:
            continue
        per_process.append(out)
    largest = max(per_process, key=lambda m: m.get("VmRSS", 0))
    return {**largest, "VmRSS_all_processes": round(sum(m.get("VmRSS", 0) for m in per_process), 1)}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server's processes."""
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def idle_empty() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="taipan-bench-empty-") as home:
        server = Server(Path(home))
        try:
            time.sleep(1)
            return memory(server.proc.pid)
        finally:
            server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=3, help="wrk duration of each load")
    ap.add_argument("--settle", type=float, default=12, help="seconds to wait after the loads")
    ap.add_argument("--home", type=Path, help="reuse a home seeded by an earlier run (its channel 'big')")
    args = ap.parse_args()
    results: dict = {"records": args.records, "loadavg_before": os.getloadavg(), "idle_empty_home": idle_empty()}
    home = args.home or Path(tempfile.mkdtemp(prefix="taipan-bench-"))
    if args.home is None:
        seed_channel(home, "big", "noarch", args.records)
    else:
        forget_publications(home)
    server = Server(home)
    pid = server.proc.pid
    try:
        results["idle"] = memory(pid)
        token = server.token()
        base = f"{server.url}/api/repo/big/noarch"
        httpx.get(f"{base}/repodata.json.zst", timeout=900).raise_for_status()
        wait_for_pointer(home)
        results["after_first_build"] = memory(pid)
        uploads = [build_pkg(home / f"pkg{RUN}x{i}", f"memory{RUN}x{i}") for i in range(3)]
        uploads.append(build_package(Path(tempfile.mkdtemp(dir=home))))  # 1 MiB, for the package load
        for pkg in uploads:
            r = httpx.post(f"{server.url}/api/channels/big/artifacts", headers={"X-Auth": token},
                           files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "conda1"})
            if not (r.status_code == 409 and pkg == uploads[-1]):  # a reused home has the 1 MiB one
                r.raise_for_status()
            for path in ("repodata_shards.msgpack.zst", "repodata.json", "repodata.json.zst"):
                httpx.get(f"{base}/{path}", timeout=120).raise_for_status()
        wait_for_pointer(home)
        results["after_uploads"] = memory(pid)
        if have("wrk"):
            etag = httpx.get(f"{base}/repodata.json", headers={"Accept-Encoding": "gzip"}).headers["etag"]
            shards = msgpack.unpackb(unzst(httpx.get(f"{base}/repodata_shards.msgpack.zst").content))["shards"]
            loads = {
                "package_get": (f"{base}/{uploads[-1].name}", {}),
                "repodata_gzip": (f"{base}/repodata.json", {"Accept-Encoding": "gzip"}),
                "zst": (f"{base}/repodata.json.zst", {}),
                "revalidate_304": (f"{base}/repodata.json", {"Accept-Encoding": "gzip", "If-None-Match": etag}),
                "shard": (f"{base}/shards/{next(iter(shards.values())).hex()}.msgpack.zst", {}),
                "repodata_plain": (f"{base}/repodata.json", {}),
            }
            for key, (url, headers) in loads.items():
                c0, t0 = cpu_seconds(pid), time.perf_counter()
                rate = wrk(url, seconds=args.seconds, headers=headers, timeout=60)
                elapsed = time.perf_counter() - t0
                results[key] = {"req_s": rate, "cpu_us_per_request": round(
                    (cpu_seconds(pid) - c0) / max(rate * elapsed, 1) * 1e6, 1), **memory(pid)}
            time.sleep(args.settle)
            results[f"after_loads_{args.settle:g}s"] = memory(pid)
    finally:
        server.stop()
    results["loadavg_after"] = os.getloadavg()
    emit(results)


if __name__ == "__main__":
    main()
