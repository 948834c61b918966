"""`conda-repo` with R packages: upload detects an R source package from its content (or takes -t cran),
and search, listings, copy, move and remove work with --family cran."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
from cli_harness import Cli

from taipan.domain.cran import parse_dcf


def _index(cli: Cli, channel: str) -> dict[str, str]:
    r = httpx.get(f"{cli.server.url}/api/repo/{channel}/src/contrib/PACKAGES")  # type: ignore[attr-defined]
    return {rec["Package"]: rec["Version"] for rec in parse_dcf(r.content)}


def test_conda_repo_with_r_packages(cli: Cli, channel: Callable[..., str], r_packages: dict[str, Path]) -> None:
    src, dst = channel("rcli"), channel("rcli")
    proc = cli.run("upload", "-c", src, str(r_packages["tpdep"]), str(r_packages["tpmain-0.9"]))
    assert f"Uploaded tpdep_1.0.tar.gz to {src}" in proc.stderr, proc.stderr
    cli.run("upload", "-c", src, "-t", "cran", str(r_packages["tpmain"]))
    assert _index(cli, src) == {"tpdep": "1.0", "tpmain": "1.0"}
    files = json.loads(cli.run("channel", "--list-files", f"{src}::tpmain", "--family", "cran", "--json").stdout)
    assert sorted(f["ckey"] for f in files) == ["src/contrib/tpmain_0.9.tar.gz", "src/contrib/tpmain_1.0.tar.gz"]
    found = json.loads(cli.run("search", "tpmain", "--family", "cran", "--json").stdout)
    assert any(i["channel"] == src and i["family"] == "cran" for i in found)
    cli.run("copy", f"{src}::tpdep", "-d", dst, "--family", "cran")
    cli.run("move", f"{src}::tpmain/0.9", "-d", dst, "--family", "cran")
    assert _index(cli, dst) == {"tpdep": "1.0", "tpmain": "0.9"}
    assert _index(cli, src) == {"tpdep": "1.0", "tpmain": "1.0"}
    cli.run("remove", f"{src}::tpmain", "--family", "cran", "-f")
    assert _index(cli, src) == {"tpdep": "1.0"}
    # without --family cran, the conda family is meant: nothing of that name there
    cli.run("remove", f"{src}::tpdep", "-f", rc=None)
    assert _index(cli, src) == {"tpdep": "1.0"}
