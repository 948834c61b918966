"""Upload -> visible latency at scale, and warm/304 serving of repodata.json.zst against nginx.

    .venv/bin/python benchmarks/bench_index.py [--records 100000] [--seconds 10] [--home DIR]

Seeds a channel with N records in noarch, starts `taipan serve`, uploads one real package and
times the first request of the shard index, repodata.json and repodata.json.zst after it (the first
includes the publish) and how long until all three contain it; then
runs wrk (-t2 -c32) against the warm .zst and a 304 revalidation, and the same file from nginx.

With --shared: a second `taipan serve` on the same home; after an upload published by the first,
the time of the second's first request that shows it (it adopts the shared publication, no build),
the first request after a restart, an upload through the second process and one through the
restarted process (each resumes the index from the publication, then publishes the change), and the
RSS of each process.
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

# Names of this run's uploads, so that a reused home takes them as new packages.
RUN = int(time.time())


def build_pkg(out: Path, name: str) -> Path:
    from rattler_build import assemble_package

    files = out / "files"
    (files / "share").mkdir(parents=True, exist_ok=True)
    (files / "share" / f"{name}.txt").write_text(name)
    return Path(assemble_package(name, "1.0", "noarch", "0", out, files_dir=files, noarch="generic",
                                 timestamp=datetime(2025, 1, 1, tzinfo=UTC)).path)


def unzst(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def first_requests(base: str, filename: str, name: str) -> dict[str, float]:
    """Right after an upload: the time of the first request of each index file (the first one
    includes the publish), and whether it shows the upload."""
    out: dict[str, float] = {}
    for key, path, shows in (
            ("first_shard_index_s", "repodata_shards.msgpack.zst",
             lambda b: name in msgpack.unpackb(unzst(b))["shards"]),
            ("first_json_s", "repodata.json", lambda b: filename.encode() in b),
            ("first_zst_s", "repodata.json.zst", lambda b: filename.encode() in unzst(b))):
        t0 = time.perf_counter()
        r = httpx.get(f"{base}/{path}", timeout=120)
        out[key] = round(time.perf_counter() - t0, 3)
        if not shows(r.content):
            out[key.replace("_s", "_stale")] = 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--shared", action="store_true", help="measure a second process and a restart only")
    ap.add_argument("--home", type=Path, help="reuse a home seeded by an earlier run (its channel 'big'); "
                    "seeding a million records takes minutes")
    args = ap.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="taipan-bench-"))
    t0 = time.perf_counter()
    if args.home is None:
        seed_channel(home, "big", "noarch", args.records)
    else:
        forget_publications(home)
    print(f"home: {home}", file=sys.stderr)
    if args.shared:
        shared(home, args.records)
        return
    results: dict = {"records": args.records, "seed_s": round(time.perf_counter() - t0, 2), "workers": args.workers}
    server = Server(home, workers=args.workers)
    try:
        token = server.token()
        base = f"{server.url}/api/repo/big/noarch"
        t0 = time.perf_counter()
        cold = httpx.get(f"{base}/repodata.json.zst", timeout=900)
        results["cold_first_zst_s"] = round(time.perf_counter() - t0, 3)
        results["repodata_json_mb"] = round(len(unzst(cold.content)) / 1e6, 1)
        results["repodata_zst_mb"] = round(len(cold.content) / 1e6, 2)
        latencies = []
        for attempt in range(3):
            name = f"newcomer{RUN}x{attempt}"
            pkg = build_pkg(home / f"pkg{RUN}x{attempt}", name)
            t0 = time.perf_counter()
            r = httpx.post(f"{server.url}/api/channels/big/artifacts", headers={"X-Auth": token},
                           files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "conda1"})
            r.raise_for_status()
            upload_s = time.perf_counter() - t0
            firsts = first_requests(base, pkg.name, name)
            while True:
                zst = httpx.get(f"{base}/repodata.json.zst", timeout=120).content
                js = httpx.get(f"{base}/repodata.json", timeout=120).content
                idx = msgpack.unpackb(unzst(httpx.get(f"{base}/repodata_shards.msgpack.zst").content))
                if pkg.name.encode() in unzst(zst) and pkg.name.encode() in js and name in idx["shards"]:
                    break
            latencies.append({"upload_s": round(upload_s, 3), **firsts,
                              "visible_all_s": round(time.perf_counter() - t0, 3)})
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
                root.mkdir(parents=True, exist_ok=True)
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


def forget_publications(home: Path) -> None:
    """Drop a reused home's publication pointers, so that the first process builds again."""
    from sqlalchemy import create_engine, text

    from taipan.settings import Settings

    engine = create_engine(Settings(home=home).database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM index_publications"))
    engine.dispose()


def wait_for_pointer(home: Path, timeout: float = 600) -> float:
    """Wait until the shared pointer is as new as the log (a large publication is shared by a
    background thread after the building process serves it); the seconds waited."""
    from sqlalchemy import create_engine, text

    from taipan.settings import Settings

    engine = create_engine(Settings(home=home).database_url)
    t0 = time.perf_counter()
    try:
        while True:
            with engine.connect() as conn:
                if conn.execute(text("SELECT count(*) FROM index_publications WHERE seq >= "
                                     "(SELECT coalesce(max(seq), 0) FROM index_changes)")).scalar():
                    return round(time.perf_counter() - t0, 3)
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("the publication was never shared")
            time.sleep(0.05)
    finally:
        engine.dispose()


def upload_and_look(server: Server, token: str, home: Path, name: str) -> dict[str, float]:
    """Upload a new package through ``server`` and time the first request of each index file."""
    pkg = build_pkg(home / f"pkg-{name}", name)
    t0 = time.perf_counter()
    httpx.post(f"{server.url}/api/channels/big/artifacts", headers={"X-Auth": token},
               files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "conda1"},
               timeout=120).raise_for_status()
    upload_s = round(time.perf_counter() - t0, 3)
    return {"upload_s": upload_s, **first_requests(f"{server.url}/api/repo/big/noarch", pkg.name, name)}


def shared(home: Path, records: int) -> None:
    results: dict = {"records": records}
    a = Server(home)
    b = Server(home)
    try:
        token = a.token()
        base_a, base_b = (f"{s.url}/api/repo/big/noarch" for s in (a, b))
        t0 = time.perf_counter()
        httpx.get(f"{base_a}/repodata.json.zst", timeout=120).raise_for_status()
        results["cold_build_first_process_s"] = round(time.perf_counter() - t0, 3)
        results["cold_build_shared_after_s"] = wait_for_pointer(home)
        t0 = time.perf_counter()
        httpx.get(f"{base_b}/repodata.json.zst", timeout=120).raise_for_status()
        results["first_zst_second_process_s"] = round(time.perf_counter() - t0, 3)
        firsts = []
        for attempt in range(3):
            name = f"shared{RUN}x{attempt}"
            pkg = build_pkg(home / f"pkg{RUN}x{attempt}", name)
            httpx.post(f"{a.url}/api/channels/big/artifacts", headers={"X-Auth": token},
                       files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "conda1"}).raise_for_status()
            t0 = time.perf_counter()
            httpx.get(f"{base_a}/repodata.json.zst", timeout=120).raise_for_status()  # the publish
            publish_s = time.perf_counter() - t0
            shared_after = wait_for_pointer(home)
            time.sleep(1.1)  # the second process's poll interval
            t0 = time.perf_counter()
            data = unzst(httpx.get(f"{base_b}/repodata.json.zst", timeout=120).content)
            firsts.append({"publish_s": round(publish_s, 3), "shared_after_s": shared_after,
                           "second_first_get_s": round(time.perf_counter() - t0, 3),
                           "visible": pkg.name.encode() in data})
        results["after_change"] = firsts
        # An upload through the process that only adopted so far: it resumes the index from the
        # publication's snapshot (no load of every row) and applies the change.
        results["upload_through_second_process"] = upload_and_look(b, token, home, f"second{RUN}")
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
        results["upload_after_restart"] = upload_and_look(c, c.token(), home, f"restarted{RUN}")
        results["rss_restarted_after_upload_mb"] = round(c.rss_mb(), 1)
    finally:
        c.stop()
    emit(results)


if __name__ == "__main__":
    main()
