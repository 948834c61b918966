"""Helpers shared by the benchmarks: a seeded Taipan home, a server process, wrk and nginx runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx

ADMIN_PASSWORD = "bench-admin-password"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_rows(home: Path, channel: str, rows_for: Callable[[str], Iterable[dict[str, Any]]]) -> str:
    """A Taipan home (migrated, with the admin account) whose new ``channel`` holds the file rows that
    ``rows_for(channel_id)`` yields, inserted directly in batches; returns the channel's id."""
    from sqlalchemy import insert

    from taipan.db.migrate import upgrade
    from taipan.db.models import File
    from taipan.domain.permissions import Principal
    from taipan.runtime import build_runtime
    from taipan.services import accounts, channels
    from taipan.settings import Settings

    settings = Settings(home=home, admin_password=ADMIN_PASSWORD)
    upgrade(settings.database_url)
    rt = build_runtime(settings)
    with rt.sessions() as db:
        accounts.bootstrap_admin(db, "admin", ADMIN_PASSWORD)
        admin = accounts.get_user(db, "admin")
        p = Principal(admin.id, "admin", "admin", frozenset({"*"}), kind="session")
        ch = channels.create_channel(db, p, channel)
        db.commit()
        rows = []
        for row in rows_for(ch.id):
            rows.append({"meta": {}, "state": "active", "download_count": 0, **row})
            if len(rows) == 5000:
                db.execute(insert(File), rows)
                rows = []
        if rows:
            db.execute(insert(File), rows)
        db.commit()
    rt.close()
    return ch.id


def synthetic_records(subdir: str, n: int, *, names: int = 10000) -> Iterator[tuple[str, dict[str, Any]]]:
    """n synthetic conda records (file name, record) over `names` package names, the same on every call."""
    for i in range(n):
        name, version = f"pkg{i % names:05d}", f"{i // names}.{i % 7}.0"
        yield f"{name}-{version}-py_0.conda", {
            "build": "py_0", "build_number": 0, "depends": [f"pkg{(i + 1) % names:05d} >=0.1", "python >=3.8"],
            "license": "MIT", "license_family": "MIT", "md5": f"{i:032x}", "name": name, "sha256": f"{i:064x}",
            "size": 1000 + i, "subdir": subdir, "timestamp": 1700000000000 + i, "version": version,
            "noarch": "python"}


def seed_channel(home: Path, channel: str, subdir: str, n: int, *, names: int = 10000) -> str:
    """A Taipan home with `channel` holding n synthetic records in `subdir` (inserted directly)."""
    from taipan.domain.repodata import record_bytes

    def rows(channel_id: str) -> Iterator[dict[str, Any]]:
        for i, (fn, rec) in enumerate(synthetic_records(subdir, n, names=names)):
            yield {"id": f"{i:08d}-0000-0000-0000-000000000000", "channel_id": channel_id, "family": "conda",
                   "name": rec["name"], "version": rec["version"], "subdir": subdir, "filename": fn,
                   "ckey": f"{subdir}/{fn}", "sha256": rec["sha256"], "md5": rec["md5"], "size": rec["size"],
                   "record": record_bytes(rec).decode()}

    return seed_rows(home, channel, rows)


class Server:
    def __init__(self, home: Path, *, workers: int = 1, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(home / "server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "taipan.admin.main", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", str(workers)],
            env={**os.environ, "TAIPAN_HOME": str(home), "TAIPAN_ADMIN_PASSWORD": ADMIN_PASSWORD, **(env or {})},
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/api/system/version", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start")

    def token(self) -> str:
        s = httpx.post(self.url + "/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        r = httpx.post(self.url + "/api/account/tokens", json={"name": "bench"},
                       headers={"Authorization": f"Bearer {s['token']}"})
        return r.json()["token"]

    def rss_mb(self) -> float:
        """Resident memory of the server and its children (uvicorn workers), in MB."""
        return tree_rss_mb(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    return tree_rss(pid)[0]


def tree_rss(pid: int) -> tuple[float, float]:
    """Resident memory of a process and all its descendants, and of the largest one of them, in MB
    (with several server workers, the second is the figure per worker)."""
    total, largest, todo = 0, 0, [pid]
    while todo:
        p = todo.pop()
        todo += [int(c) for c in subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout.split()]
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    kb = int(line.split()[1])
                    total, largest = total + kb, max(largest, kb)
        except FileNotFoundError:
            pass
    return total / 1024, largest / 1024


def wrk(url: str, *, seconds: int = 10, connections: int = 32, headers: dict[str, str] | None = None,
        timeout: int | None = None) -> float:
    """Requests per second measured by wrk (-t2); `timeout`: seconds before wrk gives up on an answer (2)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", *([f"--timeout={timeout}s"] if timeout else [])]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise RuntimeError(f"wrk saw {non2xx.group(1)} error responses for {url}")
    return float(m.group(1)) if m else 0.0


class Nginx:
    """nginx serving a directory on a free port (the static-server anchor), if nginx is installed."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
user root; worker_processes 2; daemon off; pid {self.dir}/nginx.pid; error_log {self.dir}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile on; etag on; gzip_static on;
  client_body_temp_path {self.dir}; proxy_temp_path {self.dir}; fastcgi_temp_path {self.dir};
  uwsgi_temp_path {self.dir}; scgi_temp_path {self.dir};
  server {{ listen 127.0.0.1:{self.port}; root {root}; }} }}
""")
        self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(50):
            try:
                httpx.get(self.url + "/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def have(cmd: str) -> bool:
    return shutil.which(cmd) is not None


def emit(results: dict) -> None:
    print(json.dumps(results, indent=2))
