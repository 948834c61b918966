"""The first requests a real conda client makes against a fresh publication, all at once.

conda asks for ``current_repodata.json.zst`` first; it used to deadlock (a lazily derived file
built from another lazily derived file under one lock) and, thread by thread, stop the server.
"""

from __future__ import annotations

import bz2
import json
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import zstandard

VARIANTS = ("current_repodata.json.zst", "current_repodata.json", "repodata.json.bz2", "repodata.json.zst",
            "repodata.json", "repodata_shards.msgpack.zst")
# What conda, mamba and rattler send besides the URL.
HEADER_SETS = ({}, {"Accept-Encoding": "gzip, deflate, br, zstd"}, {"If-None-Match": '"stale"'},
               {"Accept-Encoding": "identity", "User-Agent": "conda/26.7.0 requests/2.32"})


def _decode(name: str, body: bytes) -> dict:
    if name.endswith(".zst") and "shards" not in name:
        body = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    elif name.endswith(".bz2"):
        body = bz2.decompress(body)
    return json.loads(body)


def _fetch_all_at_once(base: str, subdir: str, rounds: int = 3) -> dict[str, set[bytes]]:
    # conda's very first request, alone, as conda makes it: nothing else has built anything yet.
    first = httpx.get(f"{base}/{subdir}/current_repodata.json.zst", timeout=20)
    assert first.status_code == 200, first.text[:200]
    jobs = [(name, headers) for _ in range(rounds) for name in VARIANTS for headers in HEADER_SETS]
    got: dict[str, set[bytes]] = {}
    lock = threading.Lock()

    def one(job: tuple[str, dict[str, str]]) -> None:
        name, headers = job
        r = httpx.get(f"{base}/{subdir}/{name}", headers=headers, timeout=20)
        assert r.status_code == 200, (name, r.status_code, r.text[:200])
        with lock:
            got.setdefault(name, set()).add(r.content)

    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(one, jobs))
    got["current_repodata.json.zst"].add(first.content)
    return got


def _check_consistent(got: dict[str, set[bytes]]) -> None:
    for name, bodies in got.items():
        assert len(bodies) == 1, f"{name} answered with different bytes within one publication"
    full = _decode("repodata.json", next(iter(got["repodata.json"])))
    for name in ("repodata.json.zst", "repodata.json.bz2"):
        assert _decode(name, next(iter(got[name]))) == full
    current = _decode("current_repodata.json", next(iter(got["current_repodata.json"])))
    assert _decode("current_repodata.json.zst", next(iter(got["current_repodata.json.zst"]))) == current
    assert set(current["packages.conda"]) <= set(full["packages.conda"])


def _upload(server, channel: str, *paths) -> None:
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": channel}).raise_for_status()
        for p in paths:
            c.post(f"/channels/{channel}/artifacts", files={"content": (p.name, p.read_bytes())},
                   data={"filetype": "conda1"}).raise_for_status()


def test_every_variant_of_a_fresh_publication_concurrently(taipan_server, conda_packages):
    channel = f"fresh-{uuid.uuid4().hex[:8]}"
    _upload(taipan_server, channel, conda_packages["hello"], conda_packages["hello-1.1"])
    got = _fetch_all_at_once(f"{taipan_server.api}/repo/{channel}", "noarch")
    _check_consistent(got)
    current = _decode("current_repodata.json", next(iter(got["current_repodata.json"])))
    assert set(current["packages.conda"]) == {"hello-1.1-0.conda"}
    # And the server still answers everything else afterwards.
    assert httpx.get(f"{taipan_server.api}/system/version", timeout=5).status_code == 200


def test_every_variant_right_after_a_start(server_factory, conda_packages):
    first = server_factory()
    _upload(first, "startup", conda_packages["world"], conda_packages["hello"])
    first.stop()
    server = server_factory(home=first.home)
    for subdir in ("linux-64", "noarch"):
        _check_consistent(_fetch_all_at_once(f"{server.api}/repo/startup", subdir, rounds=2))


def test_sigterm_stops_the_server_within_ten_seconds_whatever_is_in_flight(server_factory, conda_packages):
    server = server_factory()
    channel = "inflight"
    _upload(server, channel, conda_packages["hello"])
    stop = threading.Event()

    def slow_body():
        yield b"x" * 1024
        while not stop.wait(0.2):
            yield b"y"

    def slow_upload() -> None:
        try:
            httpx.post(f"{server.api}/channels/{channel}/artifacts", content=slow_body(),
                       headers={"X-Auth": server.admin_token(), "Content-Type": "application/octet-stream"},
                       timeout=60)
        except httpx.HTTPError:
            pass

    def slow_reader() -> None:
        try:
            with httpx.stream("GET", f"{server.api}/repo/{channel}/noarch/repodata.json.bz2", timeout=60) as r:
                for _ in r.iter_bytes(1):
                    time.sleep(1)
        except httpx.HTTPError:
            pass

    def first_conda_request() -> None:  # the request that once hung a thread for ever
        try:
            httpx.get(f"{server.api}/repo/{channel}/noarch/current_repodata.json.zst", timeout=60)
        except httpx.HTTPError:
            pass

    threads = [threading.Thread(target=f, daemon=True)
               for f in (first_conda_request, slow_upload, slow_upload, slow_reader)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=10)
    finally:
        stop.set()
    assert time.monotonic() - started < 10
