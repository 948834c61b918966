"""Mirror benchmarks: a passive sync of a 100,000-record upstream subdir, end to end, and the filter
evaluation rate.

    .venv/bin/python benchmarks/bench_mirror.py [--records 100000] [--runs 3]
    .venv/bin/python benchmarks/bench_mirror.py --records 1500000 --peak-rss [--scenarios deps,cve]

Builds a synthetic upstream channel (linux-64 with N records, noarch empty; repodata.json and .zst),
serves it on 127.0.0.1 with a threaded http.server, starts `taipan serve` on a free port with a fresh
home, and times `POST /api/channels/<ch>/mirrors` (run_now) until the mirror is `completed` and its
repodata.json is served. Scenarios: only_spec filter (the target: < 10 s) and no filter (all records
published as passive files); with --peak-rss also only_spec + include_dependencies and only_spec + a
CVE filter (over a CVE store of 20,000 synthetic CVEs of the upstream's package names). Then it times
the filter engine alone over the same records.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import zstandard

sys.path.insert(0, str(Path(__file__).parent))
from bench_cve import write_feed  # noqa: E402

ONLY_SPECS = ["pkg42", "pkg7 >=1.5", "pkg12*", "pkg9999 1.*"]
LICENSES = ["MIT", "BSD-3-Clause", "Apache-2.0", "GPL-3.0-or-later", "LGPL-2.1", "PSF-2.0", ""]


def iter_records(n: int) -> Any:
    """The records of ``synthetic_records``, one at a time (1.5M of them do not fit in memory here)."""
    names = max(1, n // 10)
    for i in range(n):
        name, minor = f"pkg{i % names}", i // names
        fn = f"{name}-1.{minor}-h{i:08x}_0.conda"
        digest = hashlib.sha256(fn.encode()).hexdigest()
        yield fn, {
            "name": name, "version": f"1.{minor}", "build": f"h{i:08x}_0", "build_number": 0,
            # each name depends on its "parent" (pkg0 <- pkg1, pkg2 <- pkg3 ...): a closure of a few levels
            "subdir": "linux-64", "depends": [f"pkg{(i % names) // 2} >=1.0", "libgcc >=12", "__glibc >=2.17"],
            "license": LICENSES[i % len(LICENSES)], "timestamp": 1700000000000 + i * 1000,
            "sha256": digest, "md5": digest[:32], "size": 1000 + i % 5000,
        }


def synthetic_records(n: int) -> dict[str, dict[str, Any]]:
    return dict(iter_records(n))


def write_channel(root: Path, n: int) -> None:
    """repodata.json and .zst of linux-64 (n records) and an empty noarch, written as a stream."""
    for sd, count in (("linux-64", n), ("noarch", 0)):
        (root / sd).mkdir(parents=True, exist_ok=True)
        with open(root / sd / "repodata.json", "wb") as raw, open(root / sd / "repodata.json.zst", "wb") as zf, \
                zstandard.ZstdCompressor(level=3).stream_writer(zf) as zst:
            def out(b: bytes) -> None:
                raw.write(b)
                zst.write(b)
            out(b'{"info":' + orjson.dumps({"subdir": sd}) + b',"packages":{},"packages.conda":{')
            for i, (fn, rec) in enumerate(iter_records(count)):
                out((b"," if i else b"") + orjson.dumps(fn) + b":" + orjson.dumps(rec))
            out(b'},"repodata_version":1}')
    (root / "channeldata.json").write_text(json.dumps({"subdirs": ["linux-64", "noarch"], "packages": {}}))


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


def serve_dir(root: Path) -> tuple[ThreadingHTTPServer, str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_address[1]}"


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB of a process and its children, from /proc (Linux)."""
    cur = peak = 0.0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{p}/status").read_text().splitlines()
                          if ":" in line)
        except OSError:
            continue
        cur += int(fields["VmRSS"].split()[0]) / 1024
        peak += int(fields["VmHWM"].split()[0]) / 1024
    return cur, peak


# --peak-rss scenarios: name -> (label, mirror filters); "cve" runs over a store of synthetic CVEs.
BIG_SCENARIOS = {
    "only": ("only_spec", {"only_specs": ONLY_SPECS}),
    "none": ("no filter", {}),
    "deps": ("only_spec + include_dependencies", {"only_specs": ONLY_SPECS, "include_dependencies": True}),
    "cve": ("only_spec + cve_score_threshold 7", {"only_specs": ONLY_SPECS, "cve_score_threshold": 7.0}),
}
CVES = 20_000


def import_cves(home: Path, names: int) -> None:
    """20,000 synthetic NVD records about the upstream's package names, imported into the server's store."""
    feed = home / "nvd.json.gz"
    write_feed(feed, CVES, names, prefix="pkg")
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "cve", "import", "--no-match", str(feed)],
                   env={**os.environ, "TAIPAN_HOME": str(home)}, check=True, capture_output=True)


def big_sync(root: Path, upstream: str, label: str, filters: dict[str, Any], names: int) -> None:
    """One passive sync in a fresh server: time to completed and the server's peak RSS (VmHWM, which
    covers the whole sync: nothing else runs in that process, and the index is built only on a GET)."""
    home = root / f"home-{label.replace(' ', '').replace('+', '')}"
    home.mkdir()
    proc, url = start_taipan(home)
    try:
        if "cve_score_threshold" in filters:
            import_cves(home, names)
        with admin_client(url) as c:
            idle = peak_rss_mb(proc.pid)[0]
            assert c.post("/channels", json={"name": "big"}).status_code == 201
            start = time.perf_counter()
            r = c.post("/channels/big/mirrors", json={"mirror_name": "bench", "source_root": upstream,
                                                      "run_now": True, "filters": filters})
            assert r.status_code == 201, r.text
            peak_seen = 0.0
            while True:
                m = c.get("/channels/big/mirrors/bench").json()
                peak_seen = max(peak_seen, peak_rss_mb(proc.pid)[0])
                if m["state"] in ("completed", "failed", "stopped"):
                    break
                time.sleep(0.2)
            took = time.perf_counter() - start
            assert m["state"] == "completed", m
            s = m["sync_state"]
            hwm = peak_rss_mb(proc.pid)[1]
            dropped = {k: v for level in ("mirror_filtered", "channel_filtered")
                       for k, v in s["count"][level].items() if v}
            print(f"passive sync, {label:<10}: {took:.1f} s to completed; server RSS idle {idle:.0f} MB, "
                  f"peak {hwm:.0f} MB (VmHWM; highest sampled {peak_seen:.0f} MB); index parsed: "
                  f"{s.get('index_parse')}; {s['upstream_records']:,} upstream records, "
                  f"{s['count']['passive']:,} published; filter+plan {s['filter_seconds']:.1f} s; "
                  f"dropped {dropped}", flush=True)
    finally:
        proc.terminate()
        proc.wait(60)


def start_taipan(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The upstream runs on loopback, which mirrors may not reach by default (the egress policy).
    env = {**os.environ, "TAIPAN_HOME": str(home), "TAIPAN_ADMIN_PASSWORD": "bench-password-1",
           "TAIPAN_MIRRORS__ALLOWED_NETWORKS": '["127.0.0.0/8"]'}
    log = open(home / "server.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "taipan.admin.main", "serve", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(600):
        try:
            if httpx.get(url + "/system/version", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError("taipan serve did not start")


def admin_client(url: str) -> httpx.Client:
    session = httpx.post(url + "/auth/login", json={"username": "admin", "password": "bench-password-1"}).json()
    token = httpx.post(url + "/account/tokens", json={"name": "bench"},
                       headers={"Authorization": f"Bearer {session['token']}"}).json()["token"]
    return httpx.Client(base_url=url, headers={"X-Auth": token}, timeout=300)


def timed_sync(c: httpx.Client, url: str, upstream: str, channel: str, filters: dict[str, Any]) -> dict[str, Any]:
    assert c.post("/channels", json={"name": channel}).status_code == 201
    start = time.perf_counter()
    r = c.post(f"/channels/{channel}/mirrors", json={"mirror_name": "bench", "source_root": upstream,
                                                     "run_now": True, "filters": filters})
    assert r.status_code == 201, r.text
    while True:
        m = c.get(f"/channels/{channel}/mirrors/bench").json()
        if m["state"] in ("completed", "failed", "stopped"):
            break
        time.sleep(0.05)
    synced = time.perf_counter() - start
    assert m["state"] == "completed", m
    rd = c.get(f"{url}/repo/{channel}/linux-64/repodata.json")
    total = time.perf_counter() - start
    published = len(rd.json()["packages.conda"])
    s = m["sync_state"]
    # A second run with the upstream unchanged: conditional requests, nothing to parse or publish.
    start = time.perf_counter()
    assert c.put(f"/channels/{channel}/mirrors/bench", json={"run_now": True}).status_code == 202
    while True:
        again = c.get(f"/channels/{channel}/mirrors/bench").json()
        if again["state"] == "completed" and again["sync_state"].get("finished_at"):
            break
        time.sleep(0.05)
    rerun = time.perf_counter() - start
    assert again["sync_state"].get("upstream_unchanged"), again["sync_state"]
    return {"sync_s": synced, "visible_s": total, "rerun_s": rerun, "published": published,
            "upstream_records": s["upstream_records"], "filter_rate": s["filter_rate"]}


def bench_filters(n: int) -> dict[str, float]:
    from taipan.domain.filters import compile_filters, select

    recs = {"linux-64": synthetic_records(n)}
    out = {}
    for label, f in (("only_specs", {"only_specs": ONLY_SPECS}),
                     ("exclude_specs+include+licenses", {"exclude_specs": ["pkg1*", "pkg5 <1.5"],
                                                         "include_specs": ["pkg10"],
                                                         "exclude_licenses": ["gpl3", "agpl"]}),
                     ("date window", {"date_from": "2023-11-14", "date_to": "2023-11-15"})):
        compiled = compile_filters(f)
        times = []
        for _ in range(3):
            t = time.perf_counter()
            sel = select(recs, compiled)
            times.append(time.perf_counter() - t)
        best = min(times)
        out[label] = n / best
        print(f"  filter {label:<32} {best * 1000:8.1f} ms  {n / best:12,.0f} records/s  kept {sel.kept_count}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peak-rss", action="store_true",
                    help="one sync per scenario, each in a fresh server, reporting its peak RSS "
                         "(for big upstreams, e.g. --records 1500000)")
    ap.add_argument("--scenarios", default=",".join(BIG_SCENARIOS),
                    help=f"with --peak-rss: which of {', '.join(BIG_SCENARIOS)} to run (comma-separated)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        write_channel(root / "upstream", args.records)
        print(f"upstream: {args.records:,} records in linux-64 "
              f"({(root / 'upstream/linux-64/repodata.json').stat().st_size / 1e6:.1f} MB json, "
              f"{(root / 'upstream/linux-64/repodata.json.zst').stat().st_size / 1e6:.1f} MB zst), "
              f"built in {time.perf_counter() - t:.1f} s")
        httpd, upstream = serve_dir(root / "upstream")
        if args.peak_rss:
            try:
                for key in args.scenarios.split(","):
                    label, filters = BIG_SCENARIOS[key.strip()]
                    big_sync(root, upstream, label, filters, max(1, args.records // 10))
            finally:
                httpd.shutdown()
            return
        (root / "home").mkdir()
        proc, url = start_taipan(root / "home")
        try:
            with admin_client(url) as c:
                for label, filters in (("only_spec", {"only_specs": ONLY_SPECS}), ("no filter", {})):
                    slug = label.replace(' ', '').replace('_', '')
                    results = [timed_sync(c, url, upstream, f"bench-{slug}-{i}", filters)
                               for i in range(args.runs)]
                    med = {k: statistics.median(r[k] for r in results)
                           for k in ("sync_s", "visible_s", "rerun_s")}
                    r0 = results[0]
                    print(f"passive sync, {label:<10}: median {med['sync_s']:.2f} s to completed, "
                          f"{med['visible_s']:.2f} s until repodata.json served; runs "
                          + ", ".join(f"{r['sync_s']:.2f}" for r in results)
                          + f"; published {r0['published']:,} of {r0['upstream_records']:,}; "
                          f"filter rate in the sync {r0['filter_rate']:,} records/s; "
                          f"re-run with the upstream unchanged: median {med['rerun_s']:.2f} s")
        finally:
            proc.terminate()
            proc.wait(30)
            httpd.shutdown()
        print("filter engine alone:")
        bench_filters(args.records)


if __name__ == "__main__":
    main()
