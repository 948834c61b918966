"""Shared fixtures: a real `taipan serve` process on a free port, and real conda packages."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

ADMIN_PASSWORD = "admin-password-1"
LOOPBACK_NETWORKS = '["127.0.0.0/8", "::1/128"]'
# How long a test waits for one answer of a test server. Not httpx's default of 5 s: a login verifies
# an argon2 hash (64 MiB), the first one in a fresh server process, and on a loaded machine (the suite
# runs in parallel beside other work) that alone can take longer.
REQUEST_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ServerProcess:
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    admin_username: str = "admin"
    admin_password: str = ADMIN_PASSWORD
    _admin_token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api"

    def login(self, username: str | None = None, password: str | None = None) -> str:
        r = httpx.post(self.api + "/auth/login", json={"username": username or self.admin_username,
                                                       "password": password or self.admin_password},
                       timeout=REQUEST_TIMEOUT)
        r.raise_for_status()
        return r.json()["token"]

    def admin_token(self) -> str:
        """An API token of the admin with every scope (made once per server)."""
        if self._admin_token is None:
            session = self.login()
            r = httpx.post(self.api + "/account/tokens", json={"name": "tests"},
                           headers={"Authorization": f"Bearer {session}"}, timeout=REQUEST_TIMEOUT)
            r.raise_for_status()
            self._admin_token = r.json()["token"]
        return self._admin_token

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"X-Auth": token} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=REQUEST_TIMEOUT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(home: Path, env: dict[str, str] | None = None, *, workers: int = 1,
                 args: tuple[str, ...] = ()) -> ServerProcess:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # Mirrors fetch only from public addresses by default; tests run their upstreams on loopback.
    full_env = {**os.environ, "TAIPAN_HOME": str(home), "TAIPAN_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "TAIPAN_MIRRORS__ALLOWED_NETWORKS": LOOPBACK_NETWORKS, **(env or {})}
    log = home / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "taipan.admin.main", "serve", "--host", "127.0.0.1", "--port",
             str(port), "--workers", str(workers), *args], env=full_env, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(home, port, proc, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"taipan serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(server.api + "/system/version", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"taipan serve did not start:\n{log.read_text()}")


@pytest.fixture(scope="session")
def taipan_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("taipan-home"))
    yield server
    server.stop()


# The HTTP servers `taipan serve` offers (--server): tests of what the server itself bounds or
# answers (header and body limits, logs, shutdown) run on each.
HTTP_SERVERS = ("granian", "uvicorn")


@pytest.fixture(scope="session")
def server_on(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], ServerProcess]]:
    """A shared server per HTTP server kind (``server_on("uvicorn")``), started when first asked for."""
    started: dict[str, ServerProcess] = {}

    def get(kind: str) -> ServerProcess:
        if kind not in started:
            started[kind] = start_server(tmp_path_factory.mktemp(f"taipan-{kind}"), args=("--server", kind))
        return started[kind]

    yield get
    for server in started.values():
        server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def make(env: dict[str, str] | None = None, *, home: Path | None = None,
             workers: int = 1, args: tuple[str, ...] = ()) -> ServerProcess:
        s = start_server(home or tmp_path / f"home{len(started)}", env, workers=workers, args=args)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


# ---------------------------------------------------------------- real conda packages

def build_package(out_dir: Path, name: str, version: str, subdir: str, *, build: str = "0",
                  depends: list[str] | None = None, fmt: str = ".conda", license: str = "MIT",
                  license_family: str | None = "MIT", timestamp: datetime | None = None,
                  content: str | None = None) -> Path:
    """Build a real conda package with py-rattler-build; it installs share/<name>/<name>.txt."""
    from rattler_build import ArchiveType, assemble_package

    files = out_dir / f"src-{name}-{version}-{build}-{subdir}"
    (files / "share" / name).mkdir(parents=True, exist_ok=True)
    (files / "share" / name / f"{name}.txt").write_text(content or f"{name} {version}\n")
    dest = out_dir / subdir
    dest.mkdir(parents=True, exist_ok=True)
    out = assemble_package(
        name, version, subdir, build, dest, files_dir=files, depends=depends or [], license=license,
        license_family=license_family, noarch="generic" if subdir == "noarch" else None,
        archive_type=ArchiveType.Conda if fmt == ".conda" else ArchiveType.TarBz2,
        timestamp=timestamp or datetime(2024, 1, 1, tzinfo=UTC), summary=f"The {name} package",
        homepage=f"https://example.invalid/{name}")
    return Path(out.path)


@pytest.fixture(scope="session")
def conda_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """hello (noarch .conda) and world (linux-64 .tar.bz2, depends on hello), and a newer hello."""
    out = tmp_path_factory.mktemp("pkgs")
    return {
        "hello": build_package(out, "hello", "1.0", "noarch"),
        "world": build_package(out, "world", "2.0", "linux-64", build="h1_0", depends=["hello >=1.0"],
                               fmt=".tar.bz2", license="BSD-3-Clause", license_family="BSD"),
        "hello-1.1": build_package(out, "hello", "1.1", "noarch"),
    }


@pytest.fixture
def package_builder(tmp_path: Path) -> Callable[..., Path]:
    def build(*args: object, **kwargs: object) -> Path:
        return build_package(tmp_path / "built", *args, **kwargs)  # type: ignore[arg-type]

    return build



# ---------------------------------------------------------------- real Python distributions

@pytest.fixture(scope="session")
def python_dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """pyhello 1.0 (wheel + sdist), pyhello 1.1 (wheel, Requires-Python >=3.8), and pyworld 2.0
    (wheel + sdist) requiring pyhello>=1.0."""
    from pydists import build_sdist, build_wheel

    out = tmp_path_factory.mktemp("pydists")
    return {
        "hello-wheel": build_wheel(out, "pyhello", "1.0"),
        "hello-sdist": build_sdist(out, "pyhello", "1.0"),
        "hello-1.1-wheel": build_wheel(out, "pyhello", "1.1", requires_python=">=3.8"),
        "world-wheel": build_wheel(out, "pyworld", "2.0", requires_dist=["pyhello>=1.0"]),
        "world-sdist": build_sdist(out, "pyworld", "2.0", requires_dist=["pyhello>=1.0"]),
    }


# ---------------------------------------------------------------- real R packages

def rscript() -> str:
    """Rscript, which the CRAN tests drive for real: missing fails them on CI (where `.ci/run`
    installs r-base-core) and skips them elsewhere."""
    import shutil

    path = shutil.which("Rscript")
    if path is None:
        message = "Rscript is missing: install r-base-core (apt-get install r-base-core)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def build_r_package(out_dir: Path, name: str, version: str, *, imports: tuple[str, ...] = (),
                    value: str | None = None, extra: str = "") -> Path:
    """Build a real R source package with `R CMD build`; it exports hello() returning ``value``."""
    src = out_dir / f"src-{name}-{version}" / name
    (src / "R").mkdir(parents=True, exist_ok=True)
    deps = f"Imports: {', '.join(imports)}\n" if imports else ""
    (src / "DESCRIPTION").write_text(
        f"Package: {name}\nVersion: {version}\nTitle: The {name} Test Package\n"
        f"Description: A package built by the tests to be served by Taipan and installed\n"
        f"    by R itself.\nAuthors@R: person(\"Test\", \"Author\", email = \"t@example.invalid\",\n"
        f"    role = c(\"aut\", \"cre\"))\nLicense: MIT + file LICENSE\nURL: https://example.invalid/{name}\n"
        f"Depends: R (>= 3.5)\n{deps}{extra}")
    (src / "LICENSE").write_text("YEAR: 2024\nCOPYRIGHT HOLDER: Test Author\n")
    (src / "NAMESPACE").write_text("export(hello)\n")
    body = f'"{value or f"{name} {version}"}"'
    if imports:
        body = f'paste({body}, {imports[0]}::hello())'
    (src / "R" / "hello.R").write_text(f"hello <- function() {body}\n")
    subprocess.run([rscript().replace("Rscript", "R"), "CMD", "build", "--no-build-vignettes", "--no-manual",
                    str(src)], cwd=out_dir, check=True, capture_output=True, timeout=120)
    return out_dir / f"{name}_{version}.tar.gz"


@pytest.fixture(scope="session")
def r_bin() -> str:
    """The path of Rscript (see rscript())."""
    return rscript()


@pytest.fixture(scope="session")
def r_packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tpdep 1.0, tpmain 0.9 and 1.0 (1.0 imports tpdep), built with R CMD build."""
    out = tmp_path_factory.mktemp("rpkgs")
    return {
        "tpdep": build_r_package(out, "tpdep", "1.0"),
        "tpmain-0.9": build_r_package(out, "tpmain", "0.9"),
        "tpmain": build_r_package(out, "tpmain", "1.0", imports=("tpdep",)),
    }


# ---------------------------------------------------------------- SQLite or a PostgreSQL database

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Settings for servers sharing one database: none (SQLite in their home), or a PostgreSQL
    database of their own, dropped afterwards."""
    if request.param == "sqlite":
        yield {}
        return
    import psycopg

    name = f"taipan_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield {"TAIPAN_DATABASE__URL": f"postgresql://postgres@127.0.0.1:5432/{name}"}
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
