"""Plausible user mistakes around the seed doc's commands: one clear line, and nothing stored changes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cli_harness import Cli


def packages(cli: Cli, channel: str) -> list[str]:
    page = json.loads(cli.run("channel", "--list-packages", channel, "--json").stdout)[channel]
    return sorted(p["name"] for p in page["items"])


def test_a_typo_in_a_later_spec_changes_nothing(cli: Cli, channel: Callable[..., str],
                                                conda_packages: dict[str, Path]) -> None:
    src, dst = channel("qa-src"), channel("qa-dst")
    cli.run("upload", str(conda_packages["hello"]), str(conda_packages["world"]), "-c", src)
    for command in (["remove", f"{src}::hello", f"{src}::wrold", "-f"],
                    ["move", f"{src}::hello", f"{src}::wrold", "-d", dst],
                    ["copy", f"{src}::hello", f"{src}::world/9.9", "-d", dst],
                    ["copy", f"{src}::hello", "-d", f"{dst}/nosub"]):
        proc = cli.run(*command, rc=4)
        assert len(proc.stderr.strip().splitlines()) == 1 and "hint:" in proc.stderr, proc.stderr
        assert packages(cli, src) == ["hello", "world"], command
        assert packages(cli, dst) == [], command


def test_search_family_filters_on_the_server(cli: Cli, channel: Callable[..., str],
                                             conda_packages: dict[str, Path]) -> None:
    cli.run("upload", str(conda_packages["world"]), "-c", channel("qa-search"))
    # Other tests share this server and may hold Python packages whose names contain "world".
    python_hits = json.loads(cli.run("search", "world", "--family", "python", "--json").stdout)
    assert all(hit["family"] == "python" for hit in python_hits)
    assert not [hit for hit in python_hits if hit["name"] == "world"]
    conda_hits = json.loads(cli.run("search", "world", "--family", "conda", "--json").stdout)
    assert [hit for hit in conda_hits if hit["name"] == "world" and hit["family"] == "conda"]


def test_site_url_without_api(cli: Cli) -> None:
    proc = cli.run("config", "--set", "sites.noapi.url", cli.server.url)  # type: ignore[attr-defined]
    assert "does not end in /api" in proc.stderr
    proc = cli.run("-s", "noapi", "channel", "--list", rc=4)
    assert proc.stderr.count("\n") == 1 and "ending in /api" in proc.stderr and "Traceback" not in proc.stderr


def test_wizard_file_names_its_restore_command(cli: Cli, channel: Callable[..., str]) -> None:
    name = channel("qa-wiz")
    target = cli.home / "project.condarc"
    proc = cli.run("wizard", "--file", str(target), input=f"{name}\n\ny\n")
    assert f"conda-repo wizard --restore --file {target}" in proc.stderr
    cli.run("wizard", "--restore", "--file", str(target))
    assert target.read_text() == ""


def test_auth_remove_with_a_wrong_id_removes_nothing(cli: Cli) -> None:
    created = json.loads(cli.run("auth", "--create", "-n", "qa-remove", "-s", "channel:view", "--json").stdout)
    proc = cli.run("auth", "--remove", created["id"], "0000-not-an-id", rc=4)
    assert "nothing was removed" in proc.stderr and "conda-repo auth --list" in proc.stderr
    ids = [t["id"] for t in json.loads(cli.run("auth", "--list", "--json").stdout)]
    assert created["id"] in ids
    cli.run("auth", "--remove", created["id"])

