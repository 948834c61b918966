"""`taipan serve` on each HTTP server it offers (granian, the default, through its native interface
or through ASGI, and uvicorn): the same answers, the same client addresses behind a proxy, the same
prompt stop that loses nothing, IPv6."""

from __future__ import annotations

import base64
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

# granian-asgi: granian running the application through ASGI (TAIPAN_SERVER__GRANIAN_INTERFACE).
SERVERS = ("granian", "granian-asgi", "uvicorn")
ADMIN_PASSWORD = "admin-password-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=SERVERS)
def kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The --server to ask for (the servers started inherit the interface setting)."""
    server, _, interface = request.param.partition("-")
    monkeypatch.setenv("TAIPAN_SERVER__GRANIAN_INTERFACE", interface or "rsgi")
    return server


def upload(server: Any, channel: str, package: Path) -> None:
    with server.client(server.admin_token()) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        assert c.post(f"/channels/{channel}/artifacts",
                      files={"content": (package.name, package.read_bytes())}).status_code == 201


def downloads(server: Any, channel: str, n: int) -> list[dict]:
    """The channel's download records (the reports API), once there are ``n`` (recorded in batches)."""
    deadline = time.monotonic() + 30
    while True:
        r = httpx.post(f"{server.api}/reports/artifact_downloads", headers={"X-Auth": server.admin_token()},
                       json={"from_date": date.today().isoformat(), "channel_names": [channel]})
        items = r.json()["downloaded_items"]
        if len(items) >= n or time.monotonic() > deadline:
            return items
        time.sleep(0.2)


def from_address(source: str) -> httpx.Client:
    """A client whose connections come from ``source`` (any 127.0.0.0/8 address is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30)


def test_serves_the_same_channel(server_factory, conda_packages, kind):
    server = server_factory(args=("--server", kind))
    p = conda_packages["hello"]
    upload(server, "fast", p)
    url = f"{server.api}/repo/fast/noarch/{p.name}"
    got = httpx.get(url)
    assert got.status_code == 200 and got.content == p.read_bytes()
    assert got.headers["server"] == kind
    part = httpx.get(url, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206 and part.content == p.read_bytes()[5:15]
    head = httpx.head(url)
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(p.stat().st_size)
    index = httpx.get(f"{server.api}/repo/fast/noarch/repodata.json")
    assert p.name in index.text
    again = httpx.get(f"{server.api}/repo/fast/noarch/repodata.json", headers={"If-None-Match": index.headers["etag"]})
    assert again.status_code == 304
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    server.proc.wait(timeout=10)
    assert time.monotonic() - started < 10


def test_large_files_and_spans_arrive_whole(server_factory, package_builder, kind):
    """A package larger than the spans read in memory: whole, in a span past that size (sent by the
    server from the file on granian's native interface), the last bytes, and HEAD."""
    big = package_builder("spans", "1.0", "noarch", content=base64.b64encode(os.urandom(600_000)).decode())
    data = big.read_bytes()
    server = server_factory(args=("--server", kind))
    upload(server, "spans", big)
    url = f"{server.api}/repo/spans/noarch/{big.name}"
    with httpx.Client(timeout=30) as client:
        for _ in range(2):  # the second time from the fast path's cache
            assert client.get(url).content == data
            wide = client.get(url, headers={"Range": f"bytes=1000-{len(data) - 2}"})
            assert wide.status_code == 206 and wide.content == data[1000:-1]
            assert wide.headers["content-range"] == f"bytes 1000-{len(data) - 2}/{len(data)}"
            assert int(wide.headers["content-length"]) == len(data) - 1001
            tail = client.get(url, headers={"Range": "bytes=-70000"})
            assert tail.status_code == 206 and tail.content == data[-70000:]
            head = client.head(url, headers={"Range": "bytes=0-99999"})
            assert head.status_code == 206 and head.headers["content-length"] == "100000" and head.content == b""


@pytest.mark.parametrize("memory_limit", ["16777216", "100000"], ids=["from-memory", "streamed"])
def test_a_client_leaving_mid_answer_is_not_an_error(server_factory, package_builder, kind, memory_limit):
    """Clients that hang up while a large index file is on its way (answered from memory in pieces,
    or streamed from the blob store when it is past the index memory limit): the server logs no
    failure for it and goes on answering in full."""
    wide = package_builder("wide", "1.0", "noarch", depends=[f"dependency-number-{i} >=1.0.{i}" for i in range(12000)])
    server = server_factory({"TAIPAN_SERVER__INDEX_MEMORY_LIMIT": memory_limit}, args=("--server", kind))
    upload(server, "wide", wide)
    path = "/api/repo/wide/noarch/repodata.json"
    whole = httpx.get(server.url + path, timeout=30).content
    assert len(whole) > 400_000  # past the pieces (256 KiB) and the memory limit under test
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", server.port)) as leaving:
            leaving.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert leaving.recv(15) == b"HTTP/1.1 200 OK"
            leaving.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # a reset
    time.sleep(1)
    assert httpx.get(server.url + path, timeout=30).content == whole
    log = server.log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log


def test_client_address_is_taken_from_trusted_proxies_only(server_factory, conda_packages, kind):
    """X-Forwarded-For names the client when the peer is a trusted proxy (by default this machine's
    loopback, 127.0.0.1 and ::1); from any other peer it is ignored. Downloads record that address
    (also when the answer comes from the fast path) and sign-in throttling counts failures per it."""
    server = server_factory({"TAIPAN_AUTH__FREE_ADDRESS_FAILURES": "1"}, args=("--server", kind))
    p = conda_packages["hello"]
    upload(server, "addr", p)
    url = f"{server.api}/repo/addr/noarch/{p.name}"
    assert httpx.get(url, headers={"User-Agent": "first"}).status_code == 200  # the lookup is cached now
    assert httpx.get(url, headers={"X-Forwarded-For": "203.0.113.7", "User-Agent": "proxied"}).status_code == 200
    assert httpx.get(url, headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.8",
                                   "User-Agent": "two hops"}).status_code == 200
    with from_address("127.0.0.2") as untrusted:
        spoofed = untrusted.get(url, headers={"X-Forwarded-For": "203.0.113.9", "User-Agent": "spoofed"})
        assert spoofed.status_code == 200
    rows = {row["user_agent"]: row["client_address"] for row in downloads(server, "addr", 4)}
    assert rows == {"first": "127.0.0.1", "proxied": "203.0.113.7", "two hops": "203.0.113.8",
                    "spoofed": "127.0.0.2"}
    # Sign-in throttling per address: a spoofed header does not give a client a fresh address...
    def login(client: httpx.Client, forwarded: str, n: int) -> int:
        return client.post(f"{server.api}/auth/login", json={"username": f"nobody{n}", "password": "wrong-password"},
                           headers={"X-Forwarded-For": forwarded}).status_code

    with from_address("127.0.0.3") as untrusted:
        assert [login(untrusted, f"192.0.2.{n}", n) for n in range(3)][-1] == 429
    # ...while the addresses a trusted proxy names are counted apart.
    with httpx.Client(timeout=30) as proxy:
        assert [login(proxy, "192.0.2.50", n) for n in range(3)][-1] == 429
        assert login(proxy, "192.0.2.51", 3) == 401


def test_no_trusted_proxy(server_factory, conda_packages, kind):
    server = server_factory({"TAIPAN_SERVER__FORWARDED_ALLOW_IPS": ""}, args=("--server", kind))
    p = conda_packages["hello"]
    upload(server, "direct", p)
    r = httpx.get(f"{server.api}/repo/direct/noarch/{p.name}", headers={"X-Forwarded-For": "203.0.113.7"})
    assert r.status_code == 200
    assert [row["client_address"] for row in downloads(server, "direct", 1)] == ["127.0.0.1"]


def test_a_bad_trusted_proxy_setting_is_refused_with_a_hint(tmp_path):
    env = {**os.environ, "TAIPAN_HOME": str(tmp_path / "home"), "TAIPAN_ADMIN_PASSWORD": ADMIN_PASSWORD,
           "TAIPAN_SERVER__FORWARDED_ALLOW_IPS": "127.0.0.1,proxy.example"}
    r = subprocess.run([sys.executable, "-m", "taipan.admin.main", "serve", "--port", str(free_port())], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "'proxy.example' is not an IP address or network" in r.stderr and "10.0.0.0/8" in r.stderr


def test_a_stop_with_a_download_in_flight_flushes_and_exits(server_factory, package_builder, kind):
    """SIGTERM while a client is slowly reading a package and another never finishes its request
    head: the process stops within the graceful period and its exit grace, after closing its runtime
    (the download recorder flushed), never killed by its server for overstaying."""
    big = package_builder("big", "1.0", "noarch", content=base64.b64encode(os.urandom(6_000_000)).decode())
    server = server_factory({"TAIPAN_SERVER__GRACEFUL_SHUTDOWN": "2"}, args=("--server", kind))
    upload(server, "slow", big)
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect(("127.0.0.1", server.port))
    reader.sendall(f"GET /api/repo/slow/noarch/{big.name} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert reader.recv(15) == b"HTTP/1.1 200 OK"
    unfinished = socket.create_connection(("127.0.0.1", server.port))
    unfinished.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    time.sleep(0.5)
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(timeout=30)
    finally:
        reader.close()
        unfinished.close()
    took = time.monotonic() - started
    log = server.log.read_text()
    assert "refused to gracefully stop" not in log, (took, log)
    assert "Traceback" not in log.split("graceful shutdown exceeded")[-1], log
    # graceful period, the deadline's second, the exit grace, slack for a loaded machine (still under
    # the 16 s after which granian would kill the worker)
    assert took < 2 + 1 + 3 + 6, (took, log)
    restarted = server_factory(home=server.home, args=("--server", kind))
    assert [row["filename"] for row in downloads(restarted, "slow", 1)] == [big.name]


def test_ipv6_loopback(tmp_path, conda_packages, kind):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback")
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "TAIPAN_HOME": str(home), "TAIPAN_ADMIN_PASSWORD": ADMIN_PASSWORD}
    log = home / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "taipan.admin.main", "serve", "--host", "::1", "--port",
                                 str(port), "--server", kind], env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://[::1]:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(f"{base}/api/system/version", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert f"{base}/ui/" in log.read_text()  # the addresses printed at start are usable
        token = httpx.post(f"{base}/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['token']}"}
        p = conda_packages["hello"]
        assert httpx.post(f"{base}/api/channels", json={"name": "six"}, headers=headers).status_code == 201
        assert httpx.post(f"{base}/api/channels/six/artifacts", files={"content": (p.name, p.read_bytes())},
                          headers=headers).status_code == 201
        # ::1 is a trusted proxy by default, as 127.0.0.1 is
        got = httpx.get(f"{base}/api/repo/six/noarch/{p.name}", headers={"X-Forwarded-For": "2001:db8::7"})
        assert got.content == p.read_bytes()
        assert httpx.get(f"{base}/api/repo/six/noarch/{p.name}").status_code == 200
        deadline = time.monotonic() + 30
        while True:
            r = httpx.post(f"{base}/api/reports/artifact_downloads", headers=headers,
                           json={"from_date": date.today().isoformat(), "channel_names": ["six"]})
            items = r.json()["downloaded_items"]
            if len(items) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert sorted(i["client_address"] for i in items) == ["2001:db8::7", "::1"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_killing_the_server_kills_its_workers(server_factory, kind):
    """SIGKILL of `taipan serve` (a crash): its worker processes die too, as a single process would,
    rather than serving and running jobs on unsupervised."""
    server = server_factory(args=("--server", kind), workers=2)
    children = Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
    deadline = time.monotonic() + 30
    def workers_now() -> list[int]:  # not multiprocessing's resource tracker (uvicorn's workers are spawned)
        return [int(pid) for pid in children.read_text().split()
                if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()]

    while len(workers := workers_now()) < 2:
        assert time.monotonic() < deadline, workers
        time.sleep(0.1)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait()
    deadline = time.monotonic() + 30
    while alive := [pid for pid in workers if Path(f"/proc/{pid}").exists()
                    and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[:1]]:
        assert time.monotonic() < deadline, f"workers {alive} outlived the server"
        time.sleep(0.1)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.api}/system/version", timeout=5)



@pytest.mark.parametrize("given", [None, "narenas:2"])
def test_granian_gets_its_allocator_setting_before_it_loads(given):
    """granian's allocator (jemalloc) reads _RJEM_MALLOC_CONF from the C environment when granian's
    library first allocates, and its workers are forks of that process: `taipan serve` sets Taipan's
    decay setting there before granian is imported, and keeps an operator's own."""
    code = ("import ctypes, sys\n"
            "from taipan.admin.main import _require_granian\n"
            "assert 'granian' not in sys.modules\n"
            "_require_granian()\n"
            "getenv = ctypes.CDLL(None).getenv\n"
            "getenv.restype = ctypes.c_char_p\n"
            "print(getenv(b'_RJEM_MALLOC_CONF').decode())\n")
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if given is not None:
        env["_RJEM_MALLOC_CONF"] = given
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    from taipan.admin.main import GRANIAN_ALLOCATOR

    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == (given or GRANIAN_ALLOCATOR)
