"""The first request after a pause, against the same request right after it (target: the same cost).

    .venv/bin/python benchmarks/bench_idle.py [--pause 2] [--rounds 10]

A channel holding a chain of real packages (as ``bench_install.py``); each round waits ``--pause``
seconds without any request, then times one request on a new connection (the first after the
pause) and the same request again at once (new connection too). Three kinds of request take turns:
the shard index without credentials, the same with a token (X-Auth), and a package file. A fourth
round uploads a new package first (through the same server), then pauses and times the shard index
and the new package's first download (``after_upload_*``: a publication to make, a file to look up).
Reports the median of each, in ms.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_install import build_chain  # noqa: E402
from common import Server, emit, seed_channel  # noqa: E402


def timed_get(port: int, path: str, headers: dict[str, str]) -> float:
    """Milliseconds for one GET on a new connection, from connect to the last byte of the body."""
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", path, headers=headers)
    r = conn.getresponse()
    r.read()
    took = (time.perf_counter() - t0) * 1000
    conn.close()
    if r.status != 200:
        raise RuntimeError(f"{path}: {r.status}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pause", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--packages", type=int, default=5)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="taipan-bench-idle-"))
    built = build_chain(home / "pkgs", args.packages + args.rounds)
    pkgs, later = built[:2 * args.packages], built[2 * args.packages:]
    seed_channel(home, "chain", "noarch", 0)
    server = Server(home)
    results: dict = {"pause_s": args.pause, "rounds": args.rounds}
    try:
        token = server.token()

        def upload(p: Path) -> None:
            httpx.post(f"{server.url}/api/channels/chain/artifacts", headers={"X-Auth": token},
                       files={"content": (p.name, p.read_bytes())}, data={"filetype": "conda1"}).raise_for_status()

        for p in pkgs:
            upload(p)
        kinds = {"index_anonymous": ("/api/repo/chain/noarch/repodata_shards.msgpack.zst", {}),
                 "index_token": ("/api/repo/chain/noarch/repodata_shards.msgpack.zst", {"X-Auth": token}),
                 "package": (f"/api/repo/chain/noarch/{pkgs[0].name}", {})}
        for path, headers in kinds.values():  # every cache filled once
            timed_get(server.port, path, headers)
        times: dict[str, dict[str, list[float]]] = {k: {"after_pause": [], "right_after": []} for k in kinds}
        uploaded: dict[str, list[float]] = {"after_upload_index": [], "after_upload_package": []}
        for i in range(args.rounds):
            for kind, (path, headers) in kinds.items():
                time.sleep(args.pause)
                times[kind]["after_pause"].append(timed_get(server.port, path, headers))
                times[kind]["right_after"].append(timed_get(server.port, path, headers))
            upload(later[2 * i])
            time.sleep(args.pause)
            uploaded["after_upload_index"].append(timed_get(server.port, kinds["index_anonymous"][0], {}))
            uploaded["after_upload_package"].append(
                timed_get(server.port, f"/api/repo/chain/noarch/{later[2 * i].name}", {}))
        results["load_average"] = os.getloadavg()
        for kind, measured in times.items():
            for when, values in measured.items():
                results[f"{kind}_{when}_ms"] = round(statistics.median(values), 2)
        for kind, values in uploaded.items():
            results[f"{kind}_ms"] = round(statistics.median(values), 2)
    finally:
        server.stop()
    emit(results)


if __name__ == "__main__":
    main()
