"""pip and uv, the newest from PyPI, installing from a live server as subprocesses: dependencies, an
sdist built on install, pip download, --require-hashes, a private channel with the token in the URL,
yanked files skipped, and a uv project resolving against the channel."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
from pyclients import BIN, run, twine


@pytest.fixture
def served(taipan_server, pychannel, token, clean_env, python_dists) -> str:  # type: ignore[no-untyped-def]
    ch = pychannel("clients", privacy="private")
    twine(clean_env, f"{taipan_server.url}/api/repo/{ch}", [python_dists[k] for k in
          ("hello-wheel", "hello-1.1-wheel", "world-sdist")], token, "x-auth-token")
    return ch


def index(taipan_server, ch: str, token: str) -> str:  # type: ignore[no-untyped-def]
    return f"http://{token}:x-auth-token@127.0.0.1:{taipan_server.port}/api/repo/{ch}/simple/"


def pip(env: dict[str, str], *args: str, rc: int | None = 0):  # type: ignore[no-untyped-def]
    return run([str(BIN / "pip"), "--isolated", "--no-cache-dir", *args], env, rc=rc)


def installed(target: Path) -> set[str]:
    return {p.name for p in target.glob("*.dist-info")}


def test_pip_installs_with_dependencies_from_an_sdist(taipan_server, served, token, clean_env,
                                                      tmp_path: Path) -> None:
    target = tmp_path / "t"
    url = index(taipan_server, served, token)
    proc = pip(clean_env, "install", "--target", str(target), "--index-url", url, "PyWorld")
    assert installed(target) == {"pyworld-2.0.dist-info", "pyhello-1.1.dist-info"}, proc.stdout
    assert "Building wheel for pyworld" in proc.stdout or "pyworld" in proc.stdout
    # pip took the metadata files (PEP 658) rather than the wheels to resolve.
    assert ".metadata" in proc.stdout
    # Without credentials a private channel asks for them: pip fails without leaking anything.
    bad = pip(clean_env, "install", "--target", str(tmp_path / "u"), "--index-url",
              f"{taipan_server.url}/api/repo/{served}/simple/", "pyworld", rc=None)
    assert bad.returncode != 0 and token not in bad.stdout + bad.stderr


def test_pip_download_and_require_hashes(taipan_server, served, token, clean_env, python_dists,
                                         tmp_path: Path) -> None:
    url = index(taipan_server, served, token)
    dest = tmp_path / "dl"
    pip(clean_env, "download", "--no-deps", "-d", str(dest), "--index-url", url, "pyhello==1.0")
    wheel = python_dists["hello-wheel"]
    assert (dest / wheel.name).read_bytes() == wheel.read_bytes()
    good = hashlib.sha256(wheel.read_bytes()).hexdigest()
    req = tmp_path / "req.txt"
    req.write_text(f"pyhello==1.0 --hash=sha256:{good}\n")
    target = tmp_path / "t"
    pip(clean_env, "install", "--no-deps", "--require-hashes", "--target", str(target), "--index-url", url,
        "-r", str(req))
    assert installed(target) == {"pyhello-1.0.dist-info"}
    req.write_text(f"pyhello==1.0 --hash=sha256:{'0' * 64}\n")
    bad = pip(clean_env, "install", "--no-deps", "--require-hashes", "--target", str(tmp_path / "u"),
              "--index-url", url, "-r", str(req), rc=None)
    assert bad.returncode != 0 and "DO NOT MATCH THE HASHES" in bad.stderr


def test_pip_skips_yanked_files_unless_pinned(taipan_server, served, token, api, clean_env, tmp_path: Path) -> None:
    api.put(f"/channels/{served}/artifacts/python/pyhello/yank", json={"version": "1.1", "reason": "oops"})
    url = index(taipan_server, served, token)
    target = tmp_path / "t"
    pip(clean_env, "install", "--target", str(target), "--index-url", url, "pyhello")
    assert installed(target) == {"pyhello-1.0.dist-info"}
    pinned = pip(clean_env, "install", "--target", str(tmp_path / "p"), "--index-url", url, "pyhello==1.1")
    assert installed(tmp_path / "p") == {"pyhello-1.1.dist-info"}
    assert "yanked" in pinned.stderr.lower() and "oops" in pinned.stderr


def test_uv_pip_install_and_a_uv_project(taipan_server, served, token, clean_env, tmp_path: Path) -> None:
    url = index(taipan_server, served, token)
    target = tmp_path / "t"
    run([str(BIN / "uv"), "pip", "install", "--python", sys.executable, "--target", str(target),
         "--index-url", url, "pyworld"], clean_env)
    assert installed(target) == {"pyworld-2.0.dist-info", "pyhello-1.1.dist-info"}
    project = tmp_path / "proj"
    project.mkdir()
    plain = f"{taipan_server.url}/api/repo/{served}/simple/"
    (project / "pyproject.toml").write_text(
        '[project]\nname = "app"\nversion = "0.1"\nrequires-python = ">=3.11"\ndependencies = ["pyworld>=2"]\n\n'
        f'[[tool.uv.index]]\nname = "taipan"\nurl = "{plain}"\ndefault = true\nauthenticate = "always"\n')
    # The project's own [tool.uv] is read (UV_NO_CONFIG would skip it); HOME and the XDG dirs are
    # the test's, so no configuration of this machine applies.
    env = {**{k: v for k, v in clean_env.items() if k != "UV_NO_CONFIG"},
           "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_CONFIG_DIRS": str(tmp_path / "xdg"),
           "UV_INDEX_TAIPAN_USERNAME": token, "UV_INDEX_TAIPAN_PASSWORD": "x-auth-token"}
    run([str(BIN / "uv"), "lock", "--python", sys.executable], env, cwd=project)
    lock = (project / "uv.lock").read_text()
    assert 'name = "pyworld"' in lock and 'name = "pyhello"' in lock and token not in lock
    assert plain in lock
    run([str(BIN / "uv"), "sync", "--python", sys.executable, "--no-install-project"], env, cwd=project)
    site = next((project / ".venv").glob("lib/python*/site-packages"))
    assert {"pyworld-2.0.dist-info", "pyhello-1.1.dist-info"} <= installed(site)
