"""The python family through `conda-repo`: upload with detection and -t pypi, listings, search,
yank/unyank, copy, move and remove with --family python."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from cli_harness import Cli


def test_python_family_through_the_cli(cli: Cli, channel: Callable[..., str], python_dists: dict[str, Path],
                                       taipan_server) -> None:  # type: ignore[no-untyped-def]
    src, dst = channel("pysrc"), channel("pydst")
    # Detected from content: a wheel and an sdist (told apart from an R source tarball).
    cli.run("upload", "-c", src, str(python_dists["hello-wheel"]), str(python_dists["world-sdist"]))
    cli.run("upload", "-c", src, "-t", "pypi", str(python_dists["hello-sdist"]), str(python_dists["hello-1.1-wheel"]))
    files = json.loads(cli.run("channel", "--list-files", f"{src}::PyHello", "--family", "python", "--json").stdout)
    assert sorted(f["ckey"] for f in files) == sorted(
        f"simple/pyhello/{python_dists[k].name}" for k in ("hello-wheel", "hello-sdist", "hello-1.1-wheel"))
    packages = json.loads(cli.run("channel", "--list-packages", src, "--json").stdout)[src]["items"]
    assert {(p["name"], p["family"]) for p in packages} == {("pyhello", "python"), ("pyworld", "python")}
    found = json.loads(cli.run("search", "pyhello", "--family", "python", "--json").stdout)
    assert any(i["name"] == "pyhello" for i in found)
    assert "python" in cli.run("search", "pyworld").stdout

    page = f"{taipan_server.url}/api/repo/{src}/simple/pyhello/"
    token = taipan_server.admin_token()
    cli.run("yank", f"{src}::pyhello/1.1", "--reason", "bad release")
    assert 'data-yanked="bad release"' in httpx.get(page, headers={"X-Auth": token}).text
    cli.run("unyank", f"{src}::pyhello/1.1")
    assert "data-yanked" not in httpx.get(page, headers={"X-Auth": token}).text
    proc = cli.run("yank", f"{src}::nosuch", rc=None)
    assert proc.returncode != 0 and "nosuch" in proc.stderr

    cli.run("copy", f"{src}::pyhello/1.0", "-d", dst, "--family", "python")
    copied = httpx.get(f"{taipan_server.url}/api/repo/{dst}/simple/pyhello/", headers={"X-Auth": token})
    assert copied.status_code == 200
    cli.run("move", f"{src}::pyworld", "-d", dst, "--family", "python")
    moved = json.loads(cli.run("channel", "--list-packages", dst, "--json").stdout)[dst]["items"]
    assert {p["name"] for p in moved} == {"pyhello", "pyworld"}
    cli.run("remove", f"{dst}::pyhello", "--family", "python", "-f")
    assert httpx.get(f"{taipan_server.url}/api/repo/{dst}/simple/pyhello/",
                     headers={"X-Auth": token}).status_code == 404
    root = httpx.get(f"{taipan_server.url}/api/repo/{dst}/simple/", headers={"X-Auth": token}).text
    assert "pyworld/" in root and "pyhello/" not in root
