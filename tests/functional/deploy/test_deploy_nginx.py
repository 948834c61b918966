"""The documented deployment, run for real: nginx (docs/nginx-taipan.conf, only ports and paths
replaced) in front of two `taipan serve` processes and a `taipan worker`, on PostgreSQL and Redis.

Uploads through one process are visible through the other and through nginx; downloads through
nginx are authorised by Taipan and sent by nginx (X-Accel-Redirect); killing one API process loses
nothing, and nginx keeps answering through the other.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import date
from pathlib import Path

import httpx
import msgpack
import psycopg
import pytest
import zstandard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

ROOT = Path(__file__).resolve().parents[3]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/14"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx_config(tmp: Path, port: int, api_ports: tuple[int, int], blobs: Path) -> Path:
    site = (ROOT / "docs" / "nginx-taipan.conf").read_text()
    site = (site.replace("127.0.0.1:8086", f"127.0.0.1:{api_ports[0]}")
            .replace("127.0.0.1:8087", f"127.0.0.1:{api_ports[1]}")
            .replace("listen 80;", f"listen 127.0.0.1:{port};")
            .replace("/var/lib/taipan/blobs/", f"{blobs}/")
            .replace("/var/log/nginx/taipan.access.log", str(tmp / "access.log")))
    (tmp / "taipan.conf").write_text(site)
    for d in ("client", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp / d).mkdir(exist_ok=True)
    main = tmp / "nginx.conf"
    # As docs/operations.md says: nginx's workers run as the account that owns the blob store.
    user = "root" if os.geteuid() == 0 else ""
    main.write_text(f"""daemon off;
{f"user {user};" if user else ""}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
    client_body_temp_path {tmp}/client;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    include {tmp}/taipan.conf;
}}
""")
    return main


@pytest.fixture
def database() -> str:
    name = f"taipan_deploy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait(check, timeout: float = 15.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_nginx_two_servers_and_a_worker(tmp_path, database, conda_packages, server_factory):
    home = tmp_path / "home"
    env = {"TAIPAN_DATABASE__URL": database, "TAIPAN_JOBS__BACKEND": "redis", "TAIPAN_JOBS__REDIS_URL": REDIS_URL,
           "TAIPAN_JOBS__QUEUE_NAME": f"deploy-{uuid.uuid4().hex[:8]}", "TAIPAN_SERVER__OFFLOAD": "x-accel-redirect",
           "TAIPAN_STORAGE__PATH": str(home / "blobs")}
    a = server_factory(env, home=home)
    b = server_factory(env, home=home)
    worker = subprocess.Popen([sys.executable, "-m", "taipan.admin.main", "worker", "--tick", "1"],
                              env={**os.environ, **env, "TAIPAN_HOME": str(home)},
                              stdout=subprocess.DEVNULL, stderr=open(tmp_path / "worker.log", "wb"))
    port = free_port()
    nginx = subprocess.Popen([NGINX, "-c", str(_nginx_config(tmp_path, port, (a.port, b.port), home / "blobs")),
                              "-p", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    front = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ok(f"{front}/healthz"))
        token = a.admin_token()
        with a.client(token) as c:
            assert c.post("/channels", json={"name": "deploy", "privacy": "private"}).status_code == 201
        pkg = conda_packages["hello"]
        with a.client(token) as c:
            r = c.post("/channels/deploy/artifacts", files={"content": (pkg.name, pkg.read_bytes())})
            assert r.status_code == 201, r.text
        # Visible through the other process and through nginx (the other process polls the log; with
        # offload, it names the blob that nginx sends).
        for base in (b.url, front):
            url = f"{base}/api/repo/t/{token}/deploy/noarch/repodata.json"
            seconds = _wait(lambda u=url: pkg.name in _sent(u, home / "blobs"))
            print(f"visible through {base} after {seconds:.2f} s")
        # Downloads: Taipan authorises and names the blob, nginx sends the bytes (with Range).
        direct = httpx.get(f"{a.url}/api/repo/t/{token}/deploy/noarch/{pkg.name}")
        assert direct.status_code == 200 and direct.content == b""
        assert direct.headers["x-accel-redirect"].startswith("/_taipan_blobs/")
        got = httpx.get(f"{front}/api/repo/t/{token}/deploy/noarch/{pkg.name}")
        assert got.status_code == 200 and got.content == pkg.read_bytes()
        assert "x-accel-redirect" not in got.headers and got.headers["server"].startswith("nginx")
        assert got.headers["etag"] == direct.headers["etag"]  # Taipan's (the sha256), not nginx's
        assert httpx.get(f"{front}/api/repo/t/{token}/deploy/noarch/{pkg.name}",
                         headers={"If-None-Match": got.headers["etag"]}).status_code == 304
        # Index files stored as one blob (here the shard index) are offloaded too, with Taipan's
        # validators; files in segments (repodata.json and its .zst, the zstd coding) are sent by Taipan.
        listing = f"/api/repo/t/{token}/deploy/noarch/repodata_shards.msgpack.zst"
        mine = httpx.get(f"{a.url}{listing}")
        assert mine.content == b"" and mine.headers["x-accel-redirect"].startswith("/_taipan_blobs/")
        sent = httpx.get(f"{front}{listing}")
        assert sent.status_code == 200 and sent.headers["etag"] == mine.headers["etag"]
        assert pkg.name.split("-")[0] in msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(
            sent.content))["shards"]
        assert httpx.get(f"{front}{listing}", headers={"If-None-Match": sent.headers["etag"]}).status_code == 304
        index = f"/api/repo/t/{token}/deploy/noarch/repodata.json"
        plain = httpx.get(f"{front}{index}", headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and pkg.name in plain.json()["packages.conda"]
        assert "content-encoding" not in plain.headers and plain.headers["content-type"] == "application/json"
        packed = httpx.get(f"{front}{index}", headers={"Accept-Encoding": "zstd"})
        assert packed.headers["content-encoding"] == "zstd" and packed.headers["etag"] != plain.headers["etag"]
        assert "Accept-Encoding" in packed.headers["vary"] and packed.headers["content-type"] == "application/json"
        assert packed.content == plain.content  # decoded by httpx from the zstd coding it was sent in
        assert httpx.get(f"{front}{index}", headers={"Accept-Encoding": "zstd", "If-None-Match": packed.headers[
            "etag"]}).status_code == 304
        gz = httpx.get(f"{front}{index}", headers={"Accept-Encoding": "gzip"})  # made by Taipan, sent by it
        assert gz.headers["content-encoding"] == "gzip" and gz.json() == plain.json()
        part = httpx.get(f"{front}/api/repo/t/{token}/deploy/noarch/{pkg.name}", headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == pkg.read_bytes()[:10]
        assert httpx.get(f"{front}/api/repo/deploy/noarch/{pkg.name}").status_code == 401
        assert httpx.get(f"{front}/_taipan_blobs/").status_code == 404  # internal only
        # The client address that downloads record is the one nginx saw (X-Forwarded-For from a trusted
        # proxy, 127.0.0.1), not one the client claims: this client connects from 127.0.0.2.
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=30) as far:
            r = far.get(f"{front}/api/repo/t/{token}/deploy/noarch/{pkg.name}",
                        headers={"X-Forwarded-For": "198.51.100.9", "User-Agent": "far-away"})
            assert r.status_code == 200 and r.content == pkg.read_bytes()
        _wait(lambda: _downloads_from(front, token, "far-away") == ["127.0.0.2"])
        # Kill one API process: nothing is lost, nginx answers through the other.
        a.proc.send_signal(signal.SIGKILL)
        a.proc.wait()
        other = conda_packages["world"]
        with httpx.Client(base_url=f"{front}/api", headers={"X-Auth": token}, timeout=30) as c:
            for _ in range(3):  # the first request may still pick the dead process and fail over
                r = c.post("/channels/deploy/artifacts", files={"content": (other.name, other.read_bytes())})
                if r.status_code == 201:
                    break
            assert r.status_code == 201, r.text
            names = {f["name"] for f in c.get("/channels/deploy/artifacts").json()["items"]}
        assert names == {"hello", "world"}
        url = f"{front}/api/repo/t/{token}/deploy/linux-64/repodata.json"
        _wait(lambda: other.name in httpx.get(url).text)
        log = (tmp_path / "access.log").read_text()
        assert token not in log and "/t/***/" in log
    finally:
        nginx.send_signal(signal.SIGQUIT)
        nginx.wait(timeout=10)
        worker.terminate()
        worker.wait(timeout=15)


def _sent(url: str, blobs: Path) -> str:
    """What a client gets at ``url``: the body, or the blob a Taipan process hands to nginx."""
    r = httpx.get(url, headers={"Accept-Encoding": "identity"})
    inside = r.headers.get("x-accel-redirect", "").removeprefix("/_taipan_blobs/")
    return (blobs / inside).read_text() if inside else r.text


def _downloads_from(front: str, token: str, agent: str) -> list[str]:
    r = httpx.post(f"{front}/api/reports/artifact_downloads", headers={"X-Auth": token},
                   json={"from_date": date.today().isoformat(), "channel_names": ["deploy"]})
    return [i["client_address"] for i in r.json()["downloaded_items"] if i["user_agent"] == agent]


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
