"""Uploads as a user meets them (issue 7, items 13 and 14): a multi-file upload tries every file and
reports each; upload names what a file really is, and the server says which families it does not
store yet."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from cli_harness import Cli


def test_multi_file_upload_tries_every_file(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path],
                                            package_builder: Callable[..., Path], tmp_path: Path) -> None:
    target = channel("multi")
    cli.run("upload", str(conda_packages["hello"]), "-c", target)
    # The same file again is skipped, and that is not a failure.
    proc = cli.run("upload", str(conda_packages["hello"]), "-c", target)
    assert f"Skipped hello-1.0-0.conda to {target}: the same file is already there" in proc.stderr
    other_hello = package_builder("hello", "1.0", "noarch", content="a different build\n")
    assert other_hello.name == "hello-1.0-0.conda"
    notebook = tmp_path / "analysis.ipynb"  # a notebook the notebook schema refuses (no metadata)
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "cells": []}))
    missing = tmp_path / "missing-1.0-0.conda"
    proc = cli.run("upload", "-c", target, str(conda_packages["hello"]), str(other_hello), str(notebook),
                   str(missing), str(conda_packages["world"]), rc=1)
    lines = proc.stderr.splitlines()
    assert f"Skipped hello-1.0-0.conda to {target}: the same file is already there" in lines
    assert any(line.startswith(f"error: Failed to upload hello-1.0-0.conda to {target}: A different file")
               for line in lines), proc.stderr
    assert any(line.startswith(f"error: Failed to upload analysis.ipynb to {target}:") and "notebook" in line
               for line in lines), proc.stderr
    assert any(line.startswith("error: Failed to upload missing-1.0-0.conda: No such file") for line in lines)
    assert f"Uploaded world-2.0-h1_0.tar.bz2 to {target}" in lines  # after the failures, still tried
    assert lines[-1] == "1 uploaded, 1 skipped (already there), 3 failed"
    results = json.loads(cli.run("upload", "-c", target, str(conda_packages["world"]), str(other_hello),
                                 "--json", rc=5).stdout)
    assert [(r["status"], r.get("error", {}).get("code")) for r in results] == [
        ("skipped", None), ("failed", "file_exists")]
    files = json.loads(cli.run("channel", "--list-files", target, "--json").stdout)
    assert sorted(f["filename"] for f in files) == ["hello-1.0-0.conda", "world-2.0-h1_0.tar.bz2"]


def _tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_upload_says_what_a_file_really_is(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path],
                                           tmp_path: Path) -> None:
    target = channel("kinds")
    notebook = tmp_path / "notes.ipynb"
    notebook.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []}))
    project = _tar_gz(tmp_path / "dashboard.tar.gz", {"dashboard/anaconda-project.yml": b"name: dashboard\n",
                                                      "dashboard/main.py": b"print(1)\n"})
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("demo/__init__.py", "")
        zf.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
        zf.writestr("demo-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\n")
    sdist = _tar_gz(tmp_path / "demo-1.0.tar.gz", {"demo-1.0/PKG-INFO": b"Name: demo\n", "demo-1.0/setup.py": b""})
    rsrc = _tar_gz(tmp_path / "rdemo_1.0.tar.gz", {"rdemo/DESCRIPTION": b"Package: rdemo\n",
                                                   "rdemo/NAMESPACE": b"export(f)\n", "rdemo/R/f.R": b"f <- 1\n"})
    env = tmp_path / "environment.yml"
    env.write_text("name: demo\nchannels: [defaults]\ndependencies:\n  - python=3.12\n")
    junk = tmp_path / "notes.txt"
    junk.write_text("just some words\n")
    # Notebooks, projects and environment files are stored (tests/functional/cli/test_cli_documents.py).
    for path in (notebook, project, env):
        cli.run("upload", "-c", target, str(path))
    # A -t the content contradicts is refused with what the file is (python and R families are on
    # their way to the server, so their uploads are not asserted to fail here).
    proc = cli.run("upload", "-c", target, "-t", "pypi", str(conda_packages["hello"]), rc=2)
    assert "hello-1.0-0.conda is not a wheel or sdist (-t pypi): it is a conda package" in proc.stderr
    for path, what in ((wheel, "a Python wheel"), (sdist, "a Python source distribution (sdist)"),
                       (rsrc, "an R source package"), (project, "an anaconda-project archive")):
        proc = cli.run("upload", "-c", target, "-t", "conda", str(path), rc=2)
        assert f"{path.name} is not a conda package (-t conda): it is {what}" in proc.stderr, proc.stderr
    proc = cli.run("upload", "-c", target, "-t", "ipynb", str(env), rc=2)
    assert "environment.yml is not a Jupyter notebook (-t ipynb): it is a conda environment file" in proc.stderr
    proc = cli.run("upload", "-c", target, str(junk), rc=2)
    assert "Cannot tell what kind of file notes.txt is" in proc.stderr and "--package-type" in proc.stderr
    listed = json.loads(cli.run("channel", "--list-packages", target, "--json").stdout)[target]["items"]
    assert sorted(f["family"] for f in listed) == ["anaconda_env", "anaconda_project", "notebook"]
