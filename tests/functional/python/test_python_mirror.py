"""python_simple mirrors against live upstream indexes: another Taipan channel (PEP 691 JSON) and
pypiserver from PyPI (PEP 503 HTML only), passive and active, with PEP 508 filters; pip installs
from the mirror."""

from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyclients import BIN, run, twine

from pydists import build_wheel, python_metadata

JSON = "application/vnd.pypi.simple.v1+json"


def wait_done(api: httpx.Client, channel: str, name: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    m: dict[str, Any] = {}
    while time.monotonic() < deadline:
        m = api.get(f"/channels/{channel}/mirrors/{name}").json()
        if m["state"] in ("completed", "failed", "stopped"):
            return m
        time.sleep(0.2)
    raise AssertionError(f"mirror {name} did not finish: {m}")


def files_on_page(url: str, token: str) -> dict[str, Any]:
    doc = httpx.get(url, headers={"Accept": JSON, "X-Auth": token}).json()
    return {f["filename"]: f for f in doc.get("files", [])}


def until_on_page(url: str, token: str, filename: str, pred: Any = None, timeout: float = 30) -> None:
    """A change is published shortly after its request returns: wait until the upstream's page shows
    it, so that a mirror run started next is sure to see it."""
    deadline = time.monotonic() + timeout
    while True:
        files = files_on_page(url, token)
        if filename in files and (pred is None or pred(files[filename])):
            return
        assert time.monotonic() < deadline, f"{filename} not as expected on {url}: {files}"
        time.sleep(0.1)


def test_mirror_another_taipan_passive_then_active(taipan_server, api, pychannel, token, clean_env,
                                                  python_dists, tmp_path: Path) -> None:
    up = pychannel("upstream")
    twine(clean_env, f"{taipan_server.url}/api/repo/{up}", [python_dists[k] for k in
          ("hello-wheel", "hello-sdist", "hello-1.1-wheel", "world-wheel", "world-sdist")], token, "x-auth-token")
    api.put(f"/channels/{up}/artifacts/python/pyhello/yank", json={"version": "1.1", "reason": "upstream yank"})
    source = f"{taipan_server.url}/api/repo/{up}/simple/"
    until_on_page(source + "pyhello/", token, python_dists["hello-1.1-wheel"].name, lambda f: f.get("yanked"))
    added: list[str] = []
    for mode in ("passive", "active"):
        ch = pychannel(f"mirror-{mode}")
        r = api.post(f"/channels/{ch}/mirrors", json={
            "mirror_name": "pypi", "mirror_type": "python_simple", "mirror_mode": mode, "source_root": source,
            "filters": {"projects": ["PyHello", "pyworld"], "exclude_specs": ["pyhello<1.1"]}, "run_now": True})
        assert r.status_code == 201, r.text
        m = wait_done(api, ch, "pypi")
        assert m["state"] == "completed", m
        base = f"{taipan_server.url}/api/repo/{ch}/simple/"
        hello = files_on_page(base + "pyhello/", token)
        assert set(hello) == {python_dists["hello-1.1-wheel"].name}  # pyhello<1.1 excluded
        assert hello[python_dists["hello-1.1-wheel"].name]["yanked"] == "upstream yank"
        world = files_on_page(base + "pyworld/", token)
        assert set(world) == {python_dists["world-wheel"].name, python_dists["world-sdist"].name, *added}
        listed = api.get(f"/channels/{ch}/artifacts/python/pyworld/files").json()["items"]
        assert {f["state"] for f in listed} == {mode}
        wheel = python_dists["world-wheel"]
        assert world[wheel.name]["hashes"] == {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()}
        # pip installs through the mirror (a passive file is fetched, verified and stored on the way).
        target = tmp_path / f"t-{mode}"
        run([str(BIN / "pip"), "--isolated", "--no-cache-dir", "install", "--target", str(target), "--index-url",
             f"http://{token}:x-auth-token@127.0.0.1:{taipan_server.port}/api/repo/{ch}/simple/",
             "pyworld==2.0", "pyhello==1.1"], clean_env)
        assert {p.name for p in target.glob("*.dist-info")} == {"pyworld-2.0.dist-info", "pyhello-1.1.dist-info"}
        listed = api.get(f"/channels/{ch}/artifacts/python/pyworld/files").json()["items"]
        assert next(f for f in listed if f["name"] == wheel.name)["state"] == "active"
        if mode == "passive":
            # A re-run with nothing changed upstream asks every page conditionally and stops there;
            # a new upstream file is picked up by the next run.
            assert api.put(f"/channels/{ch}/mirrors/pypi", json={"run_now": True}).status_code == 202
            again = wait_done(api, ch, "pypi")
            assert again["state"] == "completed" and again["sync_state"].get("upstream_unchanged"), again
            newer = build_wheel(tmp_path, "pyworld", "2.1")
            twine(clean_env, f"{taipan_server.url}/api/repo/{up}", [newer], token, "x-auth-token")
            until_on_page(source + "pyworld/", token, newer.name)
            assert api.put(f"/channels/{ch}/mirrors/pypi", json={"run_now": True}).status_code == 202
            third = wait_done(api, ch, "pypi")
            assert third["state"] == "completed" and not third["sync_state"].get("upstream_unchanged"), third
            assert newer.name in files_on_page(base + "pyworld/", token)
            added.append(newer.name)


def test_dependency_closure_and_wheel_tags(taipan_server, api, pychannel, token, clean_env, python_dists,
                                           tmp_path: Path) -> None:
    up = pychannel("upstream-tags")
    linux = build_wheel(tmp_path, "pyhello", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    windows = build_wheel(tmp_path, "pyhello", "1.0", tag="cp312-cp312-win_amd64")
    other = build_wheel(tmp_path, "pyother", "1.0")
    twine(clean_env, f"{taipan_server.url}/api/repo/{up}", [python_dists["hello-wheel"], linux, windows, other,
          python_dists["world-wheel"]], token, "x-auth-token")
    ch = pychannel("mirror-deps")
    r = api.post(f"/channels/{ch}/mirrors", json={
        "mirror_name": "deps", "mirror_type": "python_simple", "mirror_mode": "passive",
        "source_root": f"{taipan_server.url}/api/repo/{up}/simple",
        "filters": {"only_specs": ["pyworld"], "include_dependencies": True, "python_tags": ["cp311", "py3"],
                    "platform_tags": ["manylinux*", "any"]}, "run_now": True})
    assert r.status_code == 201, r.text
    m = wait_done(api, ch, "deps")
    assert m["state"] == "completed", m
    base = f"{taipan_server.url}/api/repo/{ch}/simple/"
    assert set(files_on_page(base + "pyworld/", token)) == {python_dists["world-wheel"].name}
    # pyhello came in as a dependency (read from PEP 658 metadata), without the Windows wheel.
    assert set(files_on_page(base + "pyhello/", token)) == {python_dists["hello-wheel"].name, linux.name}
    assert httpx.get(base + "pyother/", headers={"X-Auth": token}).status_code == 404
    assert m["sync_state"].get("dependencies_added") == 2


def test_license_filters_read_pep_658_metadata(taipan_server, api, pychannel, token, clean_env,
                                               python_dists, tmp_path: Path) -> None:
    up = pychannel("upstream-lic")
    gpl = build_wheel(tmp_path, "pygpl", "1.0", metadata=python_metadata("pygpl", "1.0").replace(
        "License: MIT", "License-Expression: GPL-3.0-only").replace("Version: 2.1", "Version: 2.4"))
    classifier = build_wheel(tmp_path, "pybsd", "1.0", metadata=python_metadata("pybsd", "1.0").replace(
        "License: MIT", "Classifier: License :: OSI Approved :: BSD License"))
    twine(clean_env, f"{taipan_server.url}/api/repo/{up}", [python_dists["hello-wheel"], gpl, classifier],
          token, "x-auth-token")
    ch = pychannel("mirror-lic")
    r = api.post(f"/channels/{ch}/mirrors", json={
        "mirror_name": "lic", "mirror_type": "python_simple",
        "source_root": f"{taipan_server.url}/api/repo/{up}/simple",
        "filters": {"projects": ["pyhello", "pygpl", "pybsd"], "exclude_licenses": ["gpl3"]}, "run_now": True})
    assert r.status_code == 201, r.text
    m = wait_done(api, ch, "lic")
    assert m["state"] == "completed", m
    assert m["sync_state"]["count"]["mirror_filtered"]["license"] == 1
    root = httpx.get(f"{taipan_server.url}/api/repo/{ch}/simple/", headers={"X-Auth": token}).text
    assert "pyhello/" in root and "pybsd/" in root and "pygpl/" not in root


def test_bad_python_mirror_settings(api, pychannel) -> None:
    ch = pychannel("mirror-bad")
    r = api.post(f"/channels/{ch}/mirrors", json={
        "mirror_name": "bad", "mirror_type": "python_simple", "source_root": "https://pypi.org/simple",
        "filters": {"only_specs": ["requests >= = 2"]}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_spec", r.text


@pytest.fixture
def pypiserver(tmp_path: Path, python_dists) -> Any:  # type: ignore[no-untyped-def]
    exe = BIN / "pypi-server"
    if not exe.exists():
        pytest.skip("pypiserver is not installed (test extra)")
    packages = tmp_path / "pypiserver"
    packages.mkdir()
    for k in ("hello-wheel", "world-wheel"):
        shutil.copy(python_dists[k], packages)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([str(exe), "run", "-i", "127.0.0.1", "-p", str(port), "-a", ".", "-P", ".",
                             str(packages)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/simple/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_mirror_a_pypiserver_html_index(taipan_server, api, pychannel, token, python_dists, pypiserver) -> None:
    ch = pychannel("mirror-html")
    r = api.post(f"/channels/{ch}/mirrors", json={
        "mirror_name": "pps", "mirror_type": "python_simple", "mirror_mode": "passive", "source_root": pypiserver,
        "filters": {"only_specs": ["pyworld>=2"]}, "run_now": True})
    assert r.status_code == 201, r.text
    m = wait_done(api, ch, "pps")
    assert m["state"] == "completed", m
    base = f"{taipan_server.url}/api/repo/{ch}/simple/"
    assert set(files_on_page(base + "pyworld/", token)) == {python_dists["world-wheel"].name}
    assert httpx.get(base + "pyhello/", headers={"X-Auth": token}).status_code == 404  # not in only_specs
    got = httpx.get(base + f"pyworld/{python_dists['world-wheel'].name}", headers={"X-Auth": token})
    assert got.status_code == 200 and got.content == python_dists["world-wheel"].read_bytes()

