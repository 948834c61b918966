"""Fixtures for mirror functional tests: a real upstream channel on 127.0.0.1, a Taipan server of
our own, and the installed `conda-repo` executable signed in with an admin token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[2] / "integration" / "mirrors"))

from mirror_upstream import UpstreamServer, build_channel  # noqa: E402


def _root_conftest() -> Any:
    """tests/conftest.py, loaded under its own name (every conftest module is called 'conftest')."""
    import importlib.util

    name = "taipan_tests_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[2] / "conftest.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


ServerProcess = _root_conftest().ServerProcess
start_server = _root_conftest().start_server

CONDA_REPO = str(Path(sys.executable).parent / "conda-repo")


@pytest.fixture(scope="session")
def upstream_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_channel(tmp_path_factory.mktemp("upstream-template") / "channel")


@pytest.fixture
def upstream(upstream_template: Path, tmp_path: Path) -> Iterator[UpstreamServer]:
    """A private copy of the upstream channel (tests add and remove packages), served over HTTP."""
    root = tmp_path / "upstream"
    shutil.copytree(upstream_template, root)
    srv = UpstreamServer(root).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def mirror_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = start_server(tmp_path_factory.mktemp("mirror-home"))
    yield server
    server.stop()


@dataclass
class Cli:
    server: ServerProcess
    home: Path

    def run(self, *args: str, rc: int | None = 0, token: bool | str = True) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "REPO_CONFIG", "XDG_"))}
        env.update(HOME=str(self.home), REPO_CONFIG_DIR=str(self.home / ".conda"), NO_COLOR="1",
                   COLUMNS="200", XDG_DATA_HOME=str(self.home / "data"))
        pre = ["-t", token if isinstance(token, str) else self.server.admin_token()] if token else []
        proc = subprocess.run([CONDA_REPO, *pre, *args], env=env, text=True, capture_output=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        if rc is not None:
            assert proc.returncode == rc, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc


def make_cli(server: ServerProcess, home: Path) -> Cli:
    home.mkdir(parents=True, exist_ok=True)
    cli = Cli(server, home)
    cli.run("config", "--set", "sites.t.url", server.api, token=False)
    cli.run("config", "--set", "default_site", "t", token=False)
    return cli


@pytest.fixture
def cli(mirror_server: ServerProcess, tmp_path: Path) -> Cli:
    return make_cli(mirror_server, tmp_path / "clihome")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def api(server: ServerProcess) -> httpx.Client:
    return server.client(server.admin_token())


def wait_state(server: ServerProcess, channel: str, name: str, states: tuple[str, ...] = ("completed",),
               timeout: float = 60, pred: Any = None) -> dict[str, Any]:
    """Poll the mirror until its state is one of ``states`` (and ``pred(mirror)`` holds)."""
    deadline = time.monotonic() + timeout
    m: dict[str, Any] = {}
    with api(server) as c:
        while time.monotonic() < deadline:
            r = c.get(f"/channels/{channel}/mirrors/{name}")
            if r.status_code == 200:
                m = r.json()
                if m["state"] in states and (pred is None or pred(m)):
                    return m
                if m["state"] in ("failed", "stopped", "completed") and m["state"] not in states:
                    raise AssertionError(f"mirror ended {m['state']}: {m['sync_state']}")
            time.sleep(0.1)
    raise AssertionError(f"mirror {name} not in {states} after {timeout}s: {m}")


def served_files(server: ServerProcess, channel: str, subdir: str) -> set[str]:
    with api(server) as c:
        r = c.get(f"{server.url}/api/repo/{channel}/{subdir}/repodata.json")
        assert r.status_code == 200, r.text
        rd = r.json()
    return set(rd["packages"]) | set(rd["packages.conda"])


def served_all(server: ServerProcess, channel: str,
               subdirs: tuple[str, ...] = ("linux-64", "noarch", "osx-arm64")) -> dict[str, set[str]]:
    return {sd: served_files(server, channel, sd) for sd in subdirs}


def restart_server(server: ServerProcess, env: dict[str, str] | None = None) -> ServerProcess:
    return start_server(server.home, env)
