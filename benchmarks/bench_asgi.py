"""The fixed Python cost of one request, without HTTP: the ASGI app called in-process.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_asgi.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_asgi.py --profile shard   # cProfile of one kind

Seeds a home (SQLite, filesystem blobs) with a public channel of synthetic records plus one real
1 MiB package, builds the application as `taipan serve` does (every middleware, and the
forwarded-headers layer of app_from_env), and calls it with prepared ASGI scopes (client 127.0.0.1,
a trusted proxy by default) for the four request kinds of issue 13 where Taipan trails nginx most: a
Range GET of the package, a 304 revalidation of `repodata.json`, one CEP-16 shard GET, and the
package GET with X-Accel-Redirect offload (a second app on the same home with offload on), each
anonymous and with a token (`X-Auth`), and the 304 through a proxy (X-Forwarded-For). Prints JSON:
microseconds per request, best of `--rounds` rounds, and the status each kind answered (so a wrong
path cannot pass as fast). What the server (uvicorn, granian) adds on top is measured with wrk by
bench_compare.py and bench_packages.py.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_packages import build_package  # noqa: E402
from common import ADMIN_PASSWORD, seed_channel  # noqa: E402


def _scope(path: str, headers: dict[str, str], method: str = "GET") -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
            "query_string": b"", "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"bench"),
                                               *((k.lower().encode(), v.encode()) for k, v in headers.items())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8086), "state": {}, "extensions": {}}


class Sink:
    """send(): keeps the status, drops the body."""

    def __init__(self) -> None:
        self.status = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _call(app: Any, scope: dict[str, Any]) -> int:
    sink = Sink()
    await app(dict(scope, headers=list(scope["headers"])), _receive, sink)
    return sink.status


async def _time(app: Any, scope: dict[str, Any], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), _receive, Sink())
    return (time.perf_counter() - started) / n * 1e6


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import httpx

    from taipan.runtime import build_runtime
    from taipan.settings import Settings
    from taipan.web.app import create_app, forwarded

    home = tmp / "home"
    home.mkdir()
    seed_channel(home, "bench", "noarch", args.records)
    pkg = build_package(tmp / "pkg")
    inner = (create_app(build_runtime(Settings(home=home, admin_password=ADMIN_PASSWORD))),
             create_app(build_runtime(Settings(home=home, admin_password=ADMIN_PASSWORD,
                                               server={"offload": "x-accel-redirect"}))))
    # As app_from_env wraps them for `taipan serve`: X-Forwarded-* from trusted peers (--forwarded "": off).
    plain, offload = (forwarded(app, args.forwarded) for app in inner)
    for app in inner:
        app.state.runtime.start()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=plain), base_url="http://t") as c:
            s = (await c.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})).json()
            token = (await c.post("/api/account/tokens", json={"name": "bench"},
                                  headers={"Authorization": f"Bearer {s['token']}"})).json()["token"]
            (await c.post("/api/channels/bench/artifacts", headers={"X-Auth": token},
                          files={"content": (pkg.name, pkg.read_bytes())})).raise_for_status()
            repodata = await c.get("/api/repo/bench/noarch/repodata.json")
            assert pkg.name in repodata.text
            index = await c.get("/api/repo/bench/noarch/repodata_shards.msgpack.zst")
        import msgpack
        import zstandard

        shards = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(index.content))["shards"]
        digest = shards["pkg00042"].hex()
        base = "/api/repo/bench/noarch/"
        kinds = {
            "range": (plain, _scope(base + pkg.name, {"Range": "bytes=1000-65535"})),
            "304": (plain, _scope(base + "repodata.json", {"If-None-Match": repodata.headers["etag"],
                                                           "Accept-Encoding": "gzip, deflate, br, zstd"})),
            "shard": (plain, _scope(f"{base}shards/{digest}.msgpack.zst", {})),
            "offload": (offload, _scope(base + pkg.name, {})),
        }
        # Through a front proxy on this host: the client address comes from X-Forwarded-For.
        kinds["304_proxied"] = (plain, _scope(base + "repodata.json", {
            "If-None-Match": repodata.headers["etag"], "Accept-Encoding": "gzip, deflate, br, zstd",
            "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}))
        for name, (app, scope) in list(kinds.items()):
            if name == "304_proxied":
                continue
            kinds[name + "_token"] = (app, _scope(scope["path"], {"X-Auth": token, **{
                k.decode(): v.decode() for k, v in scope["headers"][2:]}}))
        result: dict[str, Any] = {"records": args.records, "loadavg_before": os.getloadavg(), "status": {},
                                  "us_per_request": {}}
        for name, (app, scope) in kinds.items():
            for _ in range(3):  # warm: publications, stored-file entries, principals in memory
                result["status"][name] = await _call(app, scope)
        # A large publication is shared by a background thread (storing shards, compressing): wait
        # for it, or its work is timed as the requests'.
        while any(t.name.startswith("share-") for t in threading.enumerate()):
            await asyncio.sleep(0.1)
        if args.profile:
            app, scope = kinds[args.profile]
            profile = cProfile.Profile()
            profile.enable()
            await _time(app, scope, args.requests)
            profile.disable()
            pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        # Rounds interleave the kinds; the best round of each is reported (other processes and this
        # process's background threads only ever add time).
        times: dict[str, list[float]] = {name: [] for name in kinds}
        for _ in range(args.rounds):
            for name, (app, scope) in kinds.items():
                times[name].append(await _time(app, scope, args.requests))
        result["us_per_request"] = {name: round(min(t), 1) for name, t in times.items()}
        result["loadavg_after"] = os.getloadavg()
        return result
    finally:
        for app in inner:
            app.state.runtime.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=2000)
    ap.add_argument("--requests", type=int, default=2000, help="requests per round and kind")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--forwarded", default="127.0.0.1,::1",
                    help="trusted peers of the forwarded-headers layer, as TAIPAN_SERVER__FORWARDED_ALLOW_IPS "
                         "('': no layer)")
    ap.add_argument("--profile", choices=("range", "304", "shard", "offload", "range_token", "304_token",
                                          "shard_token", "offload_token", "304_proxied"))
    args = ap.parse_args()
    import json

    with tempfile.TemporaryDirectory(prefix="bench-asgi-") as tmp:
        print(json.dumps(asyncio.run(run(args, Path(tmp))), indent=2))


if __name__ == "__main__":
    os.environ.setdefault("TAIPAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
    main()
