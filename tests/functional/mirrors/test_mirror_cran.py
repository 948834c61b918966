"""CRAN mirrors against a local CRAN-like tree made with ``tools::write_PACKAGES`` and served over HTTP
on 127.0.0.1: passive (R's install.packages fetches through the mirror, verified against MD5sum) with
the dependency closure and Archive, active with license and date filters created by `conda-repo`,
and a channel upload that the mirror never overwrites."""

from __future__ import annotations

import functools
import hashlib
import shutil
import subprocess
import threading
import uuid
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import api, unique, wait_state

ROOT_CONFTEST = __import__("conftest")._root_conftest()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def cran_tree(r_bin: str, r_packages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """src/contrib with tpdep 1.0, tpmain 1.0 (imports tpdep), tpgpl 2.0 (GPL-3, published 2023-05-01),
    and tpmain 0.9 in Archive/tpmain/; PACKAGES(.gz) written by R with Date/Publication; and
    bin/windows/contrib/4.4 with tpdep 1.0."""
    root = tmp_path_factory.mktemp("cran-upstream")
    contrib = root / "src" / "contrib"
    (contrib / "Archive" / "tpmain").mkdir(parents=True)
    for key in ("tpdep", "tpmain"):
        shutil.copy(r_packages[key], contrib)
    shutil.copy(r_packages["tpmain-0.9"], contrib / "Archive" / "tpmain")
    gpl = ROOT_CONFTEST.build_r_package(root, "tpgpl", "2.0", extra="Date/Publication: 2023-05-01 10:00:00 UTC\n")
    shutil.move(gpl, contrib)
    subprocess.run([r_bin, "--vanilla", "-e", f'tools::write_PACKAGES("{contrib}", type = "source", '
                    'fields = c("Date/Publication", "Packaged"))'], check=True, capture_output=True, timeout=120)
    text = (contrib / "PACKAGES").read_text()  # tpgpl's index entry says GPL-3 (its files say MIT)
    stanzas = [s.replace("License: MIT + file LICENSE", "License: GPL-3") if "Package: tpgpl" in s else s
               for s in text.split("\n\n")]
    (contrib / "PACKAGES").write_text("\n\n".join(stanzas))
    (contrib / "PACKAGES.gz").unlink()  # the mirror falls back to PACKAGES
    # A Windows binary tree for R 4.4 with tpdep (its index written as write_PACKAGES writes one).
    win = root / "bin" / "windows" / "contrib" / "4.4"
    win.mkdir(parents=True)
    with zipfile.ZipFile(win / "tpdep_1.0.zip", "w") as z:
        z.writestr("tpdep/DESCRIPTION", "Package: tpdep\nVersion: 1.0\nLicense: MIT + file LICENSE\n"
                                        "Built: R 4.4.1; ; 2024-07-01 10:00:00 UTC; windows\n")
    md5 = hashlib.md5((win / "tpdep_1.0.zip").read_bytes()).hexdigest()
    (win / "PACKAGES").write_text(f"Package: tpdep\nVersion: 1.0\nLicense: MIT + file LICENSE\nMD5sum: {md5}\n"
                                  "Built: R 4.4.1; ; 2024-07-01 10:00:00 UTC; windows\n")
    return root


@pytest.fixture
def upstream_url(cran_tree: Path):  # type: ignore[no-untyped-def]
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(cran_tree)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _channel(server: Any) -> str:
    name = unique("cranm")
    with api(server) as c:
        assert c.post("/channels", json={"name": name}).status_code == 201
    return name


def _files(server: Any, channel: str) -> dict[str, str]:
    """filename -> state of the channel's R files."""
    out = {}
    with api(server) as c:
        for pkg in ("tpdep", "tpmain", "tpgpl"):
            r = c.get(f"/channels/{channel}/artifacts/cran/{pkg}/files")
            if r.status_code == 200:
                out.update({f["name"]: f["state"] for f in r.json()["items"]})
    return out


R_INSTALL = r"""
repo <- Sys.getenv("REPO"); lib <- Sys.getenv("LIB")
dir.create(lib, showWarnings = FALSE)
.libPaths(c(lib, .libPaths()))
ap <- available.packages(repos = repo, type = "source")
cat("AVAILABLE:", paste(sort(paste(rownames(ap), ap[, "Version"])), collapse = ","), "\n")
install.packages("tpmain", repos = repo, type = "source", lib = lib, quiet = TRUE)
library(tpmain, lib.loc = lib)
cat("HELLO:", hello(), "\n")
"""


def test_passive_cran_mirror_with_dependencies_and_archive_installs_with_r(
        mirror_server, upstream_url, r_packages, r_bin, tmp_path) -> None:
    ch = _channel(mirror_server)
    with api(mirror_server) as c:
        r = c.post(f"/channels/{ch}/mirrors", json={
            "mirror_name": "cran", "mirror_type": "CRAN", "mirror_mode": "passive", "source_root": upstream_url,
            "filters": {"only_specs": ["tpmain>=0.9"], "include_dependencies": True, "include_archive": True},
            "run_now": True})
        assert r.status_code == 201, r.text
    m = wait_state(mirror_server, ch, "cran")
    st = m["sync_state"]
    assert st["count"]["mirror_filtered"]["only_specs"] == 2 and st["dependencies_added"] == 1, st
    assert st["dependencies_missing"] == []
    assert _files(mirror_server, ch) == {"tpdep_1.0.tar.gz": "passive", "tpmain_1.0.tar.gz": "passive",
                                         "tpmain_0.9.tar.gz": "passive"}
    repo = f"{mirror_server.url}/api/repo/{ch}"
    packages = httpx.get(f"{repo}/src/contrib/PACKAGES").text
    assert "Package: tpmain\nVersion: 1.0\n" in packages and "tpgpl" not in packages
    # R installs tpmain and its dependency; each file is fetched, checked against MD5sum and kept.
    proc = subprocess.run([r_bin, "--vanilla", "-e", R_INSTALL], capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
                               "REPO": repo, "LIB": str(tmp_path / "lib"), "R_LIBS_USER": str(tmp_path / "x")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "AVAILABLE: tpdep 1.0,tpmain 1.0 \n" in proc.stdout
    assert "HELLO: tpmain 1.0 tpdep 1.0 \n" in proc.stdout
    old = httpx.get(f"{repo}/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz")
    assert old.status_code == 200 and old.content == r_packages["tpmain-0.9"].read_bytes()
    assert set(_files(mirror_server, ch).values()) == {"active"}
    # A second run changes nothing and keeps what was fetched.
    with api(mirror_server) as c:
        assert c.put(f"/channels/{ch}/mirrors/cran", json={"run_now": True}).status_code in (200, 202)
    again = wait_state(mirror_server, ch, "cran",
                       pred=lambda m: m["sync_state"].get("finished_at") not in (None, st["finished_at"]))
    assert again["sync_state"].get("upstream_unchanged"), again["sync_state"]  # answered 304
    assert set(_files(mirror_server, ch).values()) == {"active"}


def test_active_cran_mirror_by_cli_with_license_and_date_filters(mirror_server, cli, upstream_url,
                                                                 cran_tree) -> None:
    ch = _channel(mirror_server)
    cli.run("mirror", "--create", "nogpl", "--channel", ch, "--source", upstream_url + "/src/contrib/",
            "--type", "CRAN", "--mode", "active", "--licenses", "-gpl3", "--run_now")
    m = wait_state(mirror_server, ch, "nogpl")
    assert m["sync_state"]["count"]["mirror_filtered"]["license"] == 1, m["sync_state"]
    files = _files(mirror_server, ch)
    assert files == {"tpdep_1.0.tar.gz": "active", "tpmain_1.0.tar.gz": "active"}
    # Downloaded and verified: the stored bytes are the upstream's, the index has their SHA256.
    packages = httpx.get(f"{mirror_server.url}/api/repo/{ch}/src/contrib/PACKAGES").text
    tpdep = (cran_tree / "src" / "contrib" / "tpdep_1.0.tar.gz").read_bytes()
    assert f"SHA256: {hashlib.sha256(tpdep).hexdigest()}" in packages
    # Only what was published in 2023 (Date/Publication): tpgpl.
    ch2 = _channel(mirror_server)
    cli.run("mirror", "--create", "y2023", "--channel", ch2, "--source", upstream_url, "--type", "CRAN",
            "--date_from", "2023-01-01", "--date_to", "2023-12-31", "--run_now")
    m = wait_state(mirror_server, ch2, "y2023")
    assert m["sync_state"]["count"]["mirror_filtered"]["date"] == 2
    assert _files(mirror_server, ch2) == {"tpgpl_2.0.tar.gz": "passive"}


def test_cran_mirror_errors(mirror_server, upstream_url) -> None:
    ch = _channel(mirror_server)
    with api(mirror_server) as c:
        r = c.post(f"/channels/{ch}/mirrors", json={"mirror_name": "bad", "mirror_type": "CRAN",
                                                    "source_root": "https://cran.example.invalid",
                                                    "filters": {"exclude_specs": ["gg plot"]}})
        assert r.status_code == 400 and r.json()["code"] == "invalid_spec", r.text
        # Not a CRAN-like repository: the run fails with a hint.
        r = c.post(f"/channels/{ch}/mirrors", json={"mirror_name": "empty", "mirror_type": "CRAN",
                                                    "source_root": f"{upstream_url}/nothing-{uuid.uuid4().hex}",
                                                    "run_now": True})
        assert r.status_code == 201, r.text
    m = wait_state(mirror_server, ch, "empty", states=("failed",))
    assert "PACKAGES" in m["sync_state"]["last_exception"]


def test_active_cran_mirror_of_another_taipan_channel_with_its_archive(mirror_server, r_packages) -> None:
    up = unique("cranup")
    token = mirror_server.admin_token()
    with api(mirror_server) as c:
        assert c.post("/channels", json={"name": up, "privacy": "public"}).status_code == 201
    for key in ("tpdep", "tpmain-0.9", "tpmain"):
        p = r_packages[key]
        r = httpx.post(f"{mirror_server.url}/api/repo/{up}", files={"content": (p.name, p.read_bytes())},
                       data={"filetype": "cran_source_package"}, headers={"X-Auth": token})
        assert r.status_code == 201, r.text
    ch = _channel(mirror_server)
    with api(mirror_server) as c:
        r = c.post(f"/channels/{ch}/mirrors", json={
            "mirror_name": "taipan", "mirror_type": "CRAN", "mirror_mode": "active",
            "source_root": f"{mirror_server.url}/api/repo/{up}",
            "filters": {"only_specs": ["tpmain"], "include_archive": True}, "run_now": True})
        assert r.status_code == 201, r.text
    m = wait_state(mirror_server, ch, "taipan")
    # The archived tpmain 0.9 was read from the upstream's Meta/archive.rds; tpdep is not a dependency
    # this mirror follows (no --include-dependencies).
    assert _files(mirror_server, ch) == {"tpmain_1.0.tar.gz": "active", "tpmain_0.9.tar.gz": "active"}, m
    old = httpx.get(f"{mirror_server.url}/api/repo/{ch}/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz")
    assert old.status_code == 200 and old.content == r_packages["tpmain-0.9"].read_bytes()


def test_passive_file_whose_bytes_do_not_match_md5sum_is_refused(mirror_server, cran_tree, tmp_path) -> None:
    tree = tmp_path / "tampered"
    shutil.copytree(cran_tree, tree)
    packages = tree / "src" / "contrib" / "PACKAGES"
    text = packages.read_text()
    md5 = hashlib.md5((tree / "src" / "contrib" / "tpdep_1.0.tar.gz").read_bytes()).hexdigest()
    assert f"MD5sum: {md5}" in text
    packages.write_text(text.replace(f"MD5sum: {md5}", "MD5sum: " + "0" * 32))
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tree)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ch = _channel(mirror_server)
        with api(mirror_server) as c:
            r = c.post(f"/channels/{ch}/mirrors", json={
                "mirror_name": "md5", "mirror_type": "CRAN", "source_root": f"http://127.0.0.1:{srv.server_address[1]}",
                "filters": {"only_specs": ["tpdep"]}, "run_now": True})
            assert r.status_code == 201, r.text
        wait_state(mirror_server, ch, "md5")
        got = httpx.get(f"{mirror_server.url}/api/repo/{ch}/src/contrib/tpdep_1.0.tar.gz")
        assert got.status_code == 502, got.status_code
        assert _files(mirror_server, ch) == {"tpdep_1.0.tar.gz": "passive"}  # nothing stored
    finally:
        srv.shutdown()
        srv.server_close()


def test_binary_trees_are_mirrored_when_named(mirror_server, upstream_url, cran_tree) -> None:
    ch = _channel(mirror_server)
    with api(mirror_server) as c:
        r = c.post(f"/channels/{ch}/mirrors", json={
            "mirror_name": "bin", "mirror_type": "CRAN", "source_root": upstream_url, "run_now": True,
            "filters": {"only_specs": ["tpdep"], "subdirs": ["src/contrib", "bin/windows/contrib/4.4",
                                                            "bin/macosx/big-sur-arm64/contrib/4.4"]}})
        assert r.status_code == 201, r.text
        bad = c.post(f"/channels/{ch}/mirrors", json={"mirror_name": "bad", "mirror_type": "CRAN",
                                                      "source_root": upstream_url,
                                                      "filters": {"subdirs": ["bin/windows/contrib/four"]}})
        assert bad.status_code == 400 and bad.json()["code"] == "unknown_subdir", bad.text
    wait_state(mirror_server, ch, "bin")  # the upstream has no macOS tree: skipped
    assert _files(mirror_server, ch) == {"tpdep_1.0.tar.gz": "passive", "tpdep_1.0.zip": "passive"}
    win = f"{mirror_server.url}/api/repo/{ch}/bin/windows/contrib/4.4"
    packages = httpx.get(f"{win}/PACKAGES").text
    assert "Package: tpdep\nVersion: 1.0\n" in packages and "Built: R 4.4.1;" in packages, packages
    got = httpx.get(f"{win}/tpdep_1.0.zip")
    assert got.status_code == 200
    assert got.content == (cran_tree / "bin" / "windows" / "contrib" / "4.4" / "tpdep_1.0.zip").read_bytes()


class _Gated(_Quiet):
    """Holds every package download until ``gate`` is set (a class of its own per test)."""

    gate: threading.Event

    def do_GET(self) -> None:
        if self.path.endswith(".tar.gz"):
            type(self).gate.wait(120)
        super().do_GET()


def test_stop_then_restart_an_active_cran_mirror(mirror_server, cli, cran_tree) -> None:
    # The downloads wait for the test, not for a delay: the stop is asked while they are held, and
    # they go on only once the run has seen it (sync_state.stopping), so that the run cannot finish
    # first however slowly the machine runs the CLI.
    handler = type("GatedCopy", (_Gated,), {"gate": threading.Event()})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(cran_tree)))
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ch = _channel(mirror_server)
        cli.run("mirror", "--create", "slow", "--channel", ch, "--source", f"http://127.0.0.1:{srv.server_address[1]}",
                "--type", "CRAN", "--mode", "active", "--run_now")
        running = wait_state(mirror_server, ch, "slow", states=("running",),
                             pred=lambda m: m["sync_state"].get("current_step_number", 0) >= 4)
        assert running["sync_state"]["current_step_description"] == "Fetching files"
        assert running["sync_state"]["total_steps_count"] == 5
        cli.run("mirror", "--stop", "slow", "--channel", ch)
        wait_state(mirror_server, ch, "slow", states=("running",), pred=lambda m: m["sync_state"].get("stopping"))
        handler.gate.set()
        stopped = wait_state(mirror_server, ch, "slow", states=("stopped",))
        assert stopped["sync_state"]["last_exception"] == "stopped on request"
        assert _files(mirror_server, ch) == {}  # a stopped run publishes nothing
        cli.run("mirror", "--restart", "slow", "--channel", ch)
        done = wait_state(mirror_server, ch, "slow")
        assert "stopping" not in done["sync_state"]
        assert set(_files(mirror_server, ch).values()) == {"active"} and len(_files(mirror_server, ch)) == 3
    finally:
        handler.gate.set()
        srv.shutdown()
        srv.server_close()
