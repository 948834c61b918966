"""Upload -> visible latency at scale, and warm/304 serving of repodata.json.zst against nginx.

    .venv/bin/python benchmarks/bench_index.py [--records 100000] [--seconds 10]

Seeds a channel with N records in noarch, starts `taipan serve`, uploads one real package and
measures how long until repodata.json, repodata.json.zst and the shard index all contain it; then
runs wrk (-t2 -c32) against the warm .zst and a 304 revalidation, and the same file from nginx.

With --shared: a second `taipan serve` on the same home; after an upload published by the first,
the time of the second's first request that shows it (it adopts the shared publication, no build),
the first request after a restart, and the RSS of each process.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgpack
import zstandard

sys.path.insert(0, str(Path(__file__).parent))
from common import Nginx, Server, emit, have, seed_channel, wrk  # noqa: E402


def build_pkg(out: Path, name: str) -> Path:
    from rattler_build import assemble_package

    files = out / "files"
    (files / "share").mkdir(parents=True, exist_ok=True)
    (files / "share" / f"{name}.txt").write_text(name)
    return Path(assemble_package(name, "1.0", "noarch", "0", out, files_dir=files, noarch="generic",
                                 timestamp=datetime(2025, 1, 1, tzinfo=UTC)).path)


def unzst(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--shared", action="store_true", help="measure a second process and a restart only")
    args = ap.parse_args()
    if args.shared:
        shared(args.records)
        return
    home = Path(tempfile.mkdtemp(prefix="taipan-bench-"))
    t0 = time.perf_counter()
    seed_channel(home, "big", "noarch", args.records)
    results: dict = {"records": args.records, "seed_s": round(time.perf_counter() - t0, 2), "workers": args.workers}
    server = Server(home, workers=args.workers)
    try:
        token = server.token()
        base = f"{server.url}/api/repo/big/noarch"
        t0 = time.perf_counter()
        cold = httpx.get(f"{base}/repodata.json.zst", timeout=120)
        results["cold_first_zst_s"] = round(time.perf_counter() - t0, 3)
        results["repodata_json_mb"] = round(len(unzst(cold.content)) / 1e6, 1)
        results["repodata_zst_mb"] = round(len(cold.content) / 1e6, 2)
        pkg = build_pkg(home / "pkg", "newcomer")
        latencies = []
        for attempt in range(3):
            name = f"newcomer{attempt}"
            pkg = build_pkg(home / f"pkg{attempt}", name)
            t0 = time.perf_counter()
            r = httpx.post(f"{server.url}/api/channels/big/artifacts", headers={"X-Auth": token},
                           files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "conda1"})
            r.raise_for_status()
            upload_s = time.perf_counter() - t0
            while True:
                zst = httpx.get(f"{base}/repodata.json.zst").content
                js = httpx.get(f"{base}/repodata.json").content
                idx = msgpack.unpackb(unzst(httpx.get(f"{base}/repodata_shards.msgpack.zst").content))
                if pkg.name.encode() in unzst(zst) and pkg.name.encode() in js and name in idx["shards"]:
                    break
            latencies.append({"upload_s": round(upload_s, 3), "visible_s": round(time.perf_counter() - t0, 3)})
        results["upload_to_visible"] = latencies
        json.loads(js)  # still valid JSON
        results["server_rss_mb"] = round(server.rss_mb(), 1)
        if have("wrk"):
            etag = httpx.get(f"{base}/repodata.json.zst").headers["etag"]
            results["taipan_zst_rps"] = wrk(f"{base}/repodata.json.zst", seconds=args.seconds)
            results["taipan_304_rps"] = wrk(f"{base}/repodata.json.zst", seconds=args.seconds,
                                            headers={"If-None-Match": etag})
            results["server_rss_after_load_mb"] = round(server.rss_mb(), 1)
            if have("nginx"):
                root = home / "static" / "big" / "noarch"
                root.mkdir(parents=True)
                (root / "repodata.json.zst").write_bytes(httpx.get(f"{base}/repodata.json.zst").content)
                nginx = Nginx(home / "static")
                try:
                    url = f"{nginx.url}/big/noarch/repodata.json.zst"
                    n_etag = httpx.get(url).headers["etag"]
                    results["nginx_zst_rps"] = wrk(url, seconds=args.seconds)
                    results["nginx_304_rps"] = wrk(url, seconds=args.seconds, headers={"If-None-Match": n_etag})
                finally:
                    nginx.stop()
                results["ratio_zst"] = round(results["taipan_zst_rps"] / results["nginx_zst_rps"], 3)
                results["ratio_304"] = round(results["taipan_304_rps"] / results["nginx_304_rps"], 3)
    finally:
        server.stop()
    emit(results)


def shared(records: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="taipan-bench-"))
    seed_channel(home, "big", "noarch", records)
    results: dict = {"records": records}
    a = Server(home)
    b = Server(home)
    try:
        token = a.token()
        base_a, base_b = (f"{s.url}/api/repo/big/noarch" for s in (a, b))
        t0 = time.perf_counter()
        httpx.get(f"{base_a}/repodata.json.zst", timeout=120).raise_for_status()
        results["cold_build_first_process_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        httpx.get(f"{base_b}/repodata.json.zst", timeout=120).raise_for_status()
        results["first_zst_second_process_s"] = round(time.perf_counter() - t0, 3)
        firsts = []
        for attempt in range(3):
            name = f"shared{attempt}"
            pkg = build_pkg(home / f"pkg{attempt}", name)
            httpx.post(f"{a.url}/api/channels/big/artifacts", headers={"X-Auth": token},
                       files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "conda1"}).raise_for_status()
            t0 = time.perf_counter()
            httpx.get(f"{base_a}/repodata.json.zst", timeout=120).raise_for_status()  # the publish
            publish_s = time.perf_counter() - t0
            time.sleep(1.1)  # the second process's poll interval
            t0 = time.perf_counter()
            data = unzst(httpx.get(f"{base_b}/repodata.json.zst", timeout=120).content)
            firsts.append({"publish_s": round(publish_s, 3), "second_first_get_s": round(time.perf_counter() - t0, 3),
                           "visible": pkg.name.encode() in data})
        results["after_change"] = firsts
        results["rss_first_mb"], results["rss_second_mb"] = round(a.rss_mb(), 1), round(b.rss_mb(), 1)
    finally:
        a.stop()
        b.stop()
    c = Server(home)
    try:
        t0 = time.perf_counter()
        httpx.get(f"{c.url}/api/repo/big/noarch/repodata.json.zst", timeout=120).raise_for_status()
        results["first_zst_after_restart_s"] = round(time.perf_counter() - t0, 3)
        results["rss_restarted_mb"] = round(c.rss_mb(), 1)
    finally:
        c.stop()
    emit(results)


if __name__ == "__main__":
    main()
