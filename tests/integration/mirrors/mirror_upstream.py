"""A real upstream conda channel for mirror tests: built with py-rattler-build, indexed with
py-rattler, served over HTTP on 127.0.0.1 by a tiny threaded server that counts requests and can be
told to fail or to slow down."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import zstandard


@dataclass(frozen=True)
class Pkg:
    name: str
    version: str
    build: str = "h0_0"
    subdir: str = "linux-64"
    depends: tuple[str, ...] = ()
    license: str = "MIT"
    license_family: str | None = None
    day: str = "2024-06-01"
    archive: str = ".conda"
    payload_kb: int = 1

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}-{self.build}{self.archive}"


# A small but realistic channel: dependencies, noarch, licenses, dates, both archive formats.
DEFAULT_PKGS: tuple[Pkg, ...] = (
    Pkg("zlib", "1.3.1", depends=(), license="Zlib", day="2024-01-10"),
    Pkg("zlib", "1.2.13", license="Zlib", day="2023-05-01"),
    Pkg("libfoo", "2.0", depends=("zlib >=1.3",), license="BSD-3-Clause", day="2024-02-01"),
    Pkg("libfoo", "1.0", depends=("zlib",), license="BSD-3-Clause", day="2023-02-01"),
    Pkg("app", "1.0", depends=("libfoo >=2", "pydata"), license="MIT", day="2024-03-01"),
    Pkg("app", "0.9", depends=("libfoo",), license="MIT", day="2023-03-01", archive=".tar.bz2"),
    Pkg("gplthing", "3.1", license="GPL-3.0-or-later", day="2024-04-01"),
    Pkg("lgplthing", "2.1", license="LGPL-2.1", day="2024-04-02"),
    Pkg("apachething", "1.0", license="Apache-2.0", day="2024-04-03", payload_kb=300),
    Pkg("torch", "2.0", license="BSD-3-Clause", day="2024-05-01"),
    Pkg("torch", "2.1", license="BSD-3-Clause", day="2024-05-02"),
    Pkg("torch", "2.1", build="h0_1", license="BSD-3-Clause", day="2024-05-02", archive=".tar.bz2"),
    Pkg("pydata", "0.5", build="pyh0_0", subdir="noarch", depends=("zlib",), license="PSF-2.0",
        day="2024-03-02"),
    Pkg("pd", "1.0", build="0", subdir="noarch", license="Public-Domain", day="2024-03-03"),
    Pkg("osxonly", "1.0", subdir="osx-arm64", license="MIT", day="2024-03-04"),
    Pkg("nolicense", "1.0", license="", day="2024-03-05"),
)


def build_channel(root: Path, pkgs: tuple[Pkg, ...] = DEFAULT_PKGS, *, duplicate_legacy: bool = True,
                  shards: bool = False, salt: str = "") -> Path:
    """Build the packages into ``root/<subdir>/`` and index the channel; return ``root``."""
    from rattler_build import ArchiveType, assemble_package

    for pkg in pkgs:
        archives = [pkg.archive]
        if duplicate_legacy and pkg.name == "torch" and pkg.archive == ".conda":
            archives.append(".tar.bz2")  # the same build in both formats, as old channels have
        for archive in archives:
            stage = root / ".stage" / f"{pkg.filename}{archive}"
            (stage / "share" / pkg.name).mkdir(parents=True, exist_ok=True)
            (stage / "share" / pkg.name / "data.txt").write_bytes(
                (f"{pkg.name} {pkg.version} {pkg.build}\n" * (pkg.payload_kb * 40) + salt).encode())
            out = root / pkg.subdir
            out.mkdir(parents=True, exist_ok=True)
            assemble_package(
                pkg.name, pkg.version, pkg.subdir, pkg.build, out, files_dir=stage,
                depends=list(pkg.depends), license=pkg.license or None,
                license_family=pkg.license_family, noarch="generic" if pkg.subdir == "noarch" else None,
                archive_type=ArchiveType.Conda if archive == ".conda" else ArchiveType.TarBz2,
                timestamp=datetime.fromisoformat(pkg.day).replace(tzinfo=UTC), compression_level=1,
            )
    (root / "noarch").mkdir(exist_ok=True)
    index(root, shards=shards)
    return root


def index(root: Path, *, shards: bool = False) -> None:
    from rattler.index import index_fs

    asyncio.run(index_fs(root, write_zst=True, write_shards=shards, force=True))


def read_repodata(root: Path, subdir: str) -> dict[str, Any]:
    return json.loads((root / subdir / "repodata.json").read_bytes())


def upstream_records(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """subdir -> filename -> record, as the upstream publishes them."""
    out = {}
    for sub in sorted(p.name for p in root.iterdir() if (p / "repodata.json").exists()):
        rd = read_repodata(root, sub)
        out[sub] = {**rd.get("packages", {}), **rd.get("packages.conda", {})}
    return out


def write_repodata(root: Path, subdir: str, repodata: dict[str, Any]) -> None:
    raw = json.dumps(repodata).encode()
    (root / subdir / "repodata.json").write_bytes(raw)
    (root / subdir / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))


@dataclass
class UpstreamServer:
    root: Path
    url: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    fail: dict[str, int] = field(default_factory=dict)  # path suffix -> number of 503s to send
    delay: float = 0.0  # seconds to sleep before each package file
    gate: threading.Event | None = None  # when set here, package files wait until it is set
    no_zst: bool = False
    _server: ThreadingHTTPServer | None = None

    def start(self) -> UpstreamServer:
        handler = partial(_Handler, self, directory=str(self.root))
        self._server = _QuietServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-transfer (a killed mirror run) are expected here


class _Handler(SimpleHTTPRequestHandler):
    def __init__(self, upstream: UpstreamServer, *args: Any, **kw: Any) -> None:
        self.upstream = upstream
        super().__init__(*args, **kw)

    def log_message(self, *args: Any) -> None:
        pass

    def _gate(self) -> bool:
        up = self.upstream
        path = self.path.split("?", 1)[0]
        up.hits[f"{self.command} {path}"] += 1
        for suffix, left in list(up.fail.items()):
            if path.endswith(suffix) and left > 0:
                up.fail[suffix] = left - 1
                self.send_error(503, "try later")
                return False
        if up.no_zst and path.endswith(".zst"):
            self.send_error(404)
            return False
        package = path.endswith(".conda") or path.endswith(".tar.bz2")
        if up.gate is not None and package:
            up.gate.wait(120)
        if up.delay and package:
            import time

            time.sleep(up.delay)
        return True

    def do_GET(self) -> None:
        if self._gate():
            super().do_GET()

    def do_HEAD(self) -> None:
        if self._gate():
            super().do_HEAD()
