"""A whole server on the S3 blob store (moto's standalone S3 server on 127.0.0.1): uploads land in the
bucket, downloads are redirected to presigned URLs, and a real conda client installs from it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from functional.core.test_core_conda_install import solve_and_install


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(tmp_path: Path):
    port = free_port()
    exe = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "moto.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_server_on_s3(server_factory, s3, conda_packages, tmp_path):
    server = server_factory({"TAIPAN_STORAGE__BACKEND": "s3", "TAIPAN_STORAGE__S3_BUCKET": "taipan",
                             "TAIPAN_STORAGE__S3_ENDPOINT_URL": s3, "TAIPAN_STORAGE__S3_REGION": "us-east-1",
                             "TAIPAN_STORAGE__S3_ACCESS_KEY": "test", "TAIPAN_STORAGE__S3_SECRET_KEY": "test",
                             "TAIPAN_STORAGE__S3_CREATE_BUCKET": "true"})
    token = server.admin_token()
    with server.client(token) as c:
        assert c.post("/channels", json={"name": "objects", "privacy": "private"}).status_code == 201
        for key in ("hello", "world"):
            p = conda_packages[key]
            r = c.post("/channels/objects/artifacts", files={"content": (p.name, p.read_bytes())})
            assert r.status_code == 201, r.text
    local = [f for f in server.home.rglob("*") if f.is_file() and len(f.name) == 64]
    assert local == []  # the bytes are in the bucket, not on local disk
    hello = conda_packages["hello"]
    url = f"{server.api}/repo/t/{token}/objects/noarch/{hello.name}"
    first = httpx.get(url)
    assert first.status_code == 307 and first.headers["location"].startswith(s3)
    assert token not in first.headers["location"]
    assert httpx.get(url, follow_redirects=True).content == hello.read_bytes()
    assert httpx.get(f"{server.api}/repo/objects/noarch/{hello.name}").status_code == 401
    assert solve_and_install(f"{server.api}/repo/t/{token}/objects", ["world"], tmp_path) == ["hello", "world"]
    assert (tmp_path / "env" / "share" / "world" / "world.txt").read_text() == "world 2.0\n"
