"""Package bytes: a 1 MiB artifact GET and a Range GET, Taipan on uvicorn, on granian, and behind nginx
with X-Accel-Redirect offload, against nginx serving the same file, in one run.

    .venv/bin/python benchmarks/bench_packages.py --seconds 5

Prints JSON: requests per second for each, and the ratios to nginx direct.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import ADMIN_PASSWORD, Nginx, Server, emit, free_port, have, wrk  # noqa: E402


def build_package(out: Path) -> Path:
    from rattler_build import ArchiveType, assemble_package

    files = out / "files" / "share" / "big"
    files.mkdir(parents=True)
    (files / "payload.bin").write_bytes(os.urandom(1024 * 1024))  # incompressible: the archive is ~1 MiB
    pkg = assemble_package("big", "1.0", "noarch", "0", out, files_dir=out / "files", depends=[], license="MIT",
                           noarch="generic", archive_type=ArchiveType.Conda,
                           timestamp=datetime(2024, 1, 1, tzinfo=UTC))
    return Path(pkg.path)


def offload_front(tmp: Path, api_port: int, blobs: Path) -> tuple[subprocess.Popen[bytes], str]:
    """nginx in front of one Taipan process, configured as docs/nginx-taipan.conf."""
    site = (Path(__file__).parents[1] / "docs" / "nginx-taipan.conf").read_text()
    port = free_port()
    site = (site.replace("127.0.0.1:8086", f"127.0.0.1:{api_port}").replace(
        "    server 127.0.0.1:8087 max_fails=1 fail_timeout=5s;\n", "")
            .replace("listen 80;", f"listen 127.0.0.1:{port};").replace("/var/lib/taipan/blobs/", f"{blobs}/")
            .replace("access_log /var/log/nginx/taipan.access.log taipan_redacted;", "access_log off;"))
    (tmp / "site.conf").write_text(site)
    conf = tmp / "nginx.conf"
    conf.write_text(f"""daemon off; user root; worker_processes 2; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ client_body_temp_path {tmp}; proxy_temp_path {tmp}; fastcgi_temp_path {tmp}; uwsgi_temp_path {tmp};
  scgi_temp_path {tmp}; include {tmp}/site.conf; }}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    if not (have("wrk") and have("nginx")):
        sys.exit("needs wrk and nginx (apt-get install wrk nginx)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-packages-"))
    home = tmp / "home"
    home.mkdir()
    pkg = build_package(tmp / "pkg")
    results: dict[str, object] = {"package_bytes": pkg.stat().st_size, "loadavg_before": os.getloadavg()}
    rates: dict[str, float] = {}
    path = f"/api/repo/bench/noarch/{pkg.name}"
    for label, env in (("uvicorn", {}), ("granian", {"TAIPAN_SERVER__HTTP_SERVER": "granian"}),
                       ("offload", {"TAIPAN_SERVER__OFFLOAD": "x-accel-redirect"})):
        server = Server(home, env=env)
        try:
            if label == "uvicorn":
                import httpx

                token = server.token()
                httpx.post(f"{server.url}/api/channels", json={"name": "bench"}, headers={"X-Auth": token})
                httpx.post(f"{server.url}/api/channels/bench/artifacts", headers={"X-Auth": token},
                           files={"content": (pkg.name, pkg.read_bytes())}).raise_for_status()
                blob = next(p for p in (home / "blobs").rglob("*") if p.is_file() and p.stat().st_size ==
                            pkg.stat().st_size)
                (tmp / "static" / "f").mkdir(parents=True)
                (tmp / "static" / "f" / pkg.name).write_bytes(blob.read_bytes())
            url = server.url
            front = None
            if label == "offload":
                (tmp / "front").mkdir()
                front, url = offload_front(tmp / "front", server.port, home / "blobs")
                time.sleep(0.5)
            rates[label] = wrk(url + path, seconds=args.seconds)
            rates[label + "_range"] = wrk(url + path, seconds=args.seconds, headers={"Range": "bytes=1000-65535"})
            if front is not None:
                front.terminate()
                front.wait()
        finally:
            server.stop()
    nginx = Nginx(tmp / "static")
    try:
        rates["nginx"] = wrk(f"{nginx.url}/f/{pkg.name}", seconds=args.seconds)
        rates["nginx_range"] = wrk(f"{nginx.url}/f/{pkg.name}", seconds=args.seconds,
                                   headers={"Range": "bytes=1000-65535"})
    finally:
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    results["req_per_s"] = rates
    results["ratio_to_nginx"] = {k: round(v / rates["nginx_range" if k.endswith("_range") else "nginx"], 3)
                                 for k, v in rates.items() if not k.startswith("nginx")}
    results["loadavg_after"] = os.getloadavg()
    emit(results)


if __name__ == "__main__":
    os.environ.setdefault("TAIPAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
    main()
