"""The small answers where Taipan trails nginx most, per HTTP server and number of workers, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_servers.py --records 10000 --seconds 4 --runs 3
    PYTHONPATH=src .venv/bin/python benchmarks/bench_servers.py --configs uvicorn,granian --runs 1

One home (SQLite, filesystem blobs) with a public channel of N synthetic `noarch` records plus one
real 1 MiB package; every configuration is a `taipan serve` on that home, all started first and
idle while another is measured: `uvicorn`, `granian` (through RSGI, its default) and `granian_asgi` (the
application through ASGI) with 1 or 2 workers (`-w2`), and `+offload`
(TAIPAN_SERVER__OFFLOAD=x-accel-redirect behind nginx configured as docs/nginx-taipan.conf, which
then sends the package bytes). nginx serves the same bytes as a static tree (as in bench_compare.py).
Rows, `wrk -t2 -c32`: the 1 MiB package GET, a Range GET of it (`bytes=1000-65535`), a 304
revalidation of `repodata.json` (gzip ETag) and one CEP-16 shard; each run measures every
configuration in turn, and the median of the runs is reported with its ratio to nginx, and the CPU
time the server's processes (with the front nginx for `+offload`) used per request, which depends
far less than the rate on what else the machine runs. Prints JSON.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_compare import CHANNEL, load_requests, write_static  # noqa: E402
from bench_packages import build_package, offload_front  # noqa: E402
from common import Nginx, Server, emit, have, seed_channel  # noqa: E402

ROWS = ("package_get", "range", "revalidate_304", "shard")
TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by processes and all their descendants."""
    total, todo = 0.0, list(pids)
    while todo:
        pid = todo.pop()
        todo += [int(c) for c in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                                text=True).stdout.split()]
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def wrk_counted(url: str, seconds: int, headers: dict[str, str]) -> tuple[float, int]:
    """wrk -t2 -c32: requests per second and requests completed."""
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s"]
    for k, v in headers.items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw error responses for {url}: {out}")
    done = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return (float(rate.group(1)) if rate else 0.0), (int(done.group(1)) if done else 0)


class Config:
    """One `taipan serve` configuration, with the base URL its rows are asked at."""

    def __init__(self, name: str, home: Path, tmp: Path) -> None:
        self.name = name
        server, _, rest = name.partition("-w")
        workers = int(rest.split("+")[0]) if rest else 1
        server = server.split("+")[0]
        env = {"TAIPAN_SERVER__HTTP_SERVER": server}
        if server == "granian":
            env["TAIPAN_SERVER__GRANIAN_INTERFACE"] = "rsgi"
        elif server == "granian_asgi":  # granian running the application through ASGI
            env = {"TAIPAN_SERVER__HTTP_SERVER": "granian", "TAIPAN_SERVER__GRANIAN_INTERFACE": "asgi"}
        if name.endswith("+offload"):
            env["TAIPAN_SERVER__OFFLOAD"] = "x-accel-redirect"
        self.server = Server(home, workers=workers, env=env)
        self.front = None
        self.url = self.server.url
        if name.endswith("+offload"):
            front_dir = tmp / f"front-{name}"
            front_dir.mkdir()
            self.front, self.url = offload_front(front_dir, self.server.port, home / "blobs")
            time.sleep(0.5)

    @property
    def channel_url(self) -> str:
        return f"{self.url}/api/repo/{CHANNEL}"

    @property
    def pids(self) -> list[int]:
        return [self.server.proc.pid, *((self.front.pid,) if self.front is not None else ())]

    def stop(self) -> None:
        if self.front is not None:
            self.front.terminate()
            self.front.wait()
        self.server.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--configs", default="uvicorn,granian,uvicorn-w2,granian-w2,uvicorn+offload,granian+offload")
    args = ap.parse_args()
    if not (have("wrk") and have("nginx")):
        sys.exit("needs wrk and nginx (apt-get install wrk nginx)")
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    home = tmp / "home"
    home.mkdir()
    seed_channel(home, CHANNEL, "noarch", args.records)
    pkg = build_package(tmp / "pkg")
    configs: list[Any] = []
    nginx = None
    try:
        for name in args.configs.split(","):
            configs.append(Config(name, home, tmp))
            if len(configs) == 1:
                token = configs[0].server.token()
                httpx.post(f"{configs[0].url}/api/channels/{CHANNEL}/artifacts", headers={"X-Auth": token},
                           files={"content": (pkg.name, pkg.read_bytes())}, timeout=300).raise_for_status()
                static = tmp / "static" / CHANNEL
                write_static(static / "noarch", configs[0])
                (static / "noarch" / pkg.name).write_bytes(pkg.read_bytes())
        nginx = Nginx(tmp / "static")
        nginx.channel_url = f"{nginx.url}/{CHANNEL}"  # type: ignore[attr-defined]
        targets = [*configs, nginx]
        requests = {getattr(t, "name", "nginx"): load_requests(t, pkg.name) for t in targets}
        loads = [os.getloadavg()[0]]
        rates: dict[str, dict[str, list[float]]] = {}
        cpu: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.runs):
            for t in targets:
                name = getattr(t, "name", "nginx")
                pids = t.pids if isinstance(t, Config) else [t.proc.pid]
                for row in ROWS:
                    req = requests[name][row]
                    if isinstance(req, str):
                        raise RuntimeError(f"{name} {row}: {req}")
                    before = tree_cpu_s(pids)
                    rate, done = wrk_counted(req[0], args.seconds, req[1])
                    used = tree_cpu_s(pids) - before
                    rates.setdefault(name, {}).setdefault(row, []).append(rate)
                    cpu.setdefault(name, {}).setdefault(row, []).append(used / max(done, 1) * 1e6)
            loads.append(os.getloadavg()[0])
    finally:
        for c in configs:
            c.stop()
        if nginx is not None:
            nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    median = {name: {row: statistics.median(v) for row, v in rows.items()} for name, rows in rates.items()}
    cpu_us = {name: {row: round(statistics.median(v), 1) for row, v in rows.items()} for name, rows in cpu.items()}
    emit({"records": args.records, "wrk": f"-t2 -c32 -d{args.seconds}s, median of {args.runs}",
          "loadavg_1min_per_run": loads, "req_per_s": median, "runs": rates,
          "server_cpu_us_per_request": cpu_us,
          "ratio_to_nginx": {name: {row: round(v / median["nginx"][row], 3) for row, v in rows.items()}
                             for name, rows in median.items() if name != "nginx"}})


if __name__ == "__main__":
    main()
