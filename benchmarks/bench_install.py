"""py-rattler solve + install from Taipan vs the same channel on nginx (target: <= 1.2x).

    .venv/bin/python benchmarks/bench_install.py [--packages 40] [--runs 9]

Builds a chain of real packages (each depends on the next), uploads them to a Taipan channel, and
indexes the same files with rattler.index for nginx. Each run solves the top package and installs
the environment with a fresh package cache, so every repodata shard and package file is fetched.
The first run of each server is reported on its own (`compare_installs`): it also pays what a server
does once per publication (Taipan: the database lookup of each package file, shards read from the
blob store), which a median of a few runs would otherwise take or not by chance.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import rattler
from rattler.index import index_fs
from rattler_build import assemble_package

sys.path.insert(0, str(Path(__file__).parent))
from common import Nginx, Server, emit, have, seed_channel  # noqa: E402


def build_chain(out: Path, n: int) -> list[Path]:
    pkgs = []
    for i in range(n):
        files = out / "src" / f"p{i}"
        (files / "share" / f"p{i}").mkdir(parents=True, exist_ok=True)
        (files / "share" / f"p{i}" / "data.bin").write_bytes(bytes(range(256)) * 400 * (1 + i % 4))
        depends = [f"chain{i + 1} >=1.0"] if i + 1 < n else []
        for version in ("1.0", "1.1"):
            pkgs.append(Path(assemble_package(f"chain{i}", version, "noarch", "0", out / "noarch", files_dir=files,
                                              noarch="generic", depends=depends,
                                              timestamp=datetime(2025, 1, 1, tzinfo=UTC)).path))
    return pkgs


def solve_install(channel: str, tmp: Path, timeout: float | None = None) -> float:
    """Seconds to solve `chain0` from `channel` and install it into a new prefix (fresh caches in tmp)."""

    async def go() -> None:
        records = await rattler.solve([rattler.Channel(channel)], ["chain0"], platforms=["noarch"],
                                      virtual_packages=[], gateway=rattler.Gateway(cache_dir=tmp / "gw"))
        await rattler.install(records, target_prefix=str(tmp / "env"), cache_dir=str(tmp / "pkgs"))

    t0 = time.perf_counter()
    asyncio.run(asyncio.wait_for(go(), timeout))
    return time.perf_counter() - t0


def compare_installs(channels: dict[str, str], runs: int, root: Path, *, pause: float = 0.6,
                     timeout: float | None = None, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """`solve_install` from each channel (server name -> channel URL): a first run each, then `runs`
    more. The servers take turns in an order that rotates run by run (no server always runs right
    after the same other one), with `pause` seconds before each run: longer than Taipan's download
    recorder interval (0.5 s), so the database write a run causes never lands in the next server's
    run. Returns {"first": {name: s}, "runs": {name: [s, ...]}}; a server that exceeds `timeout`
    gets "not within N s" instead and is not run again."""
    first: dict[str, Any] = {}
    times: dict[str, Any] = {}
    names = list(channels)
    for run in range(runs + 1):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            if isinstance(times.get(name), str):
                continue  # timed out before
            log(f"solve + install from {name}, " + ("first run" if run == 0 else f"run {run}"))
            time.sleep(pause)
            tmp = Path(tempfile.mkdtemp(prefix=f"install-{name}-", dir=root))
            try:
                took = round(solve_install(channels[name], tmp, timeout), 3)
            except TimeoutError:
                times[name] = f"not within {timeout:.0f} s"
                first.setdefault(name, times[name])
                continue
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            if run == 0:
                first[name] = took
            else:
                times.setdefault(name, []).append(took)
    return {"first": first, "runs": times}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=40)
    ap.add_argument("--runs", type=int, default=9, help="runs after each server's first")
    args = ap.parse_args()
    if not have("nginx"):
        sys.exit("nginx is needed for the static anchor (apt-get install nginx)")
    home = Path(tempfile.mkdtemp(prefix="taipan-bench-install-"))
    static = home / "static" / "chain"
    pkgs = build_chain(static, args.packages)
    asyncio.run(index_fs(static, write_zst=True, write_shards=True))
    seed_channel(home, "chain", "noarch", 0)
    server = Server(home)
    nginx = Nginx(home / "static")
    results: dict = {"packages": len(pkgs)}
    try:
        token = server.token()
        for p in pkgs:
            httpx.post(f"{server.url}/api/channels/chain/artifacts", headers={"X-Auth": token},
                       files={"content": (p.name, p.read_bytes())}, data={"filetype": "conda1"}).raise_for_status()
        measured = compare_installs({"taipan": f"{server.url}/api/repo/chain", "nginx": f"{nginx.url}/chain"},
                                    args.runs, home)
        results["load_average"] = os.getloadavg()
        for name in ("taipan", "nginx"):
            results[f"{name}_first_s"] = measured["first"][name]
            results[f"{name}_median_s"] = round(statistics.median(measured["runs"][name]), 3)
            results[f"{name}_runs_s"] = measured["runs"][name]
        results["ratio"] = round(results["taipan_median_s"] / results["nginx_median_s"], 3)
        results["ratio_first"] = round(results["taipan_first_s"] / results["nginx_first_s"], 3)
    finally:
        nginx.stop()
        server.stop()
    emit(results)


if __name__ == "__main__":
    main()
