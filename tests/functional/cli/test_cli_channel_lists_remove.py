"""Channels as a user meets them (issue 7, items 11, 12 and 15): `channel --list` shows every channel
the caller can reach and `--list-packages` everything (or says how to see the rest) and `channel --remove`
asks first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pexpect
from cli_harness import CONDA_REPO, Cli, unique

USER_PASSWORD = "cli-user-password-1"


def create_user(cli: Cli) -> str:
    name = unique("clu").replace("-", "")
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", USER_PASSWORD],
                   check=True, capture_output=True,
                   env={**os.environ, "TAIPAN_HOME": str(cli.server.home)})  # type: ignore[attr-defined]
    return name


def configured(fresh_cli: Cli) -> Cli:
    fresh_cli.run("config", "--set", "sites.s.url", fresh_cli.server.api)  # type: ignore[attr-defined]
    fresh_cli.run("config", "--set", "default_site", "s")
    return fresh_cli


def listed(cli: Cli, *args: str) -> dict:
    return json.loads(cli.run("channel", "--list", "--json", *args).stdout)


def test_channel_list_shows_every_channel_the_caller_can_reach(cli: Cli, channel: Callable[..., str],
                                                               fresh_cli: Cli) -> None:
    public, soft, private = channel("lpub"), channel("lsoft"), channel("lpriv")
    cli.run("channel", "--soft-lock", soft)
    cli.run("channel", "--lock", private)
    # A signed-in user who owns none of them sees the public and the authenticated-only channel.
    user = configured(fresh_cli)
    user.run("login", "--username", create_user(cli), "--password", USER_PASSWORD)
    names = {c["name"] for c in listed(user)["items"]}
    assert {public, soft} <= names and private not in names
    # Signed out: the public ones only, and no sign-in prompt.
    user.run("logout")
    names = {c["name"] for c in listed(user)["items"]}
    assert public in names and soft not in names and private not in names
    # --offset and --limit page through the same list; total_count is the whole list's size.
    everything = listed(cli)
    assert everything["total_count"] == len(everything["items"]) >= 3
    page = listed(cli, "--offset", "1", "--limit", "2")
    assert page["total_count"] == everything["total_count"]
    assert [c["name"] for c in page["items"]] == [c["name"] for c in everything["items"][1:3]]
    with cli.server.client() as http:  # type: ignore[attr-defined]
        for bad in ({"offset": -1}, {"limit": -1}, {"limit": 10**6}, {"offset": 2**63}):
            assert http.get("/channels", params=bad).status_code == 422, bad
    assert "cannot be negative" in cli.run("channel", "--list", "-l", "-1", rc=2).stderr
    proc = cli.run("channel", "--list", "-l", "1")
    assert f"Showing channels 1-1 of {everything['total_count']}" in proc.stderr
    assert "conda-repo channel --list --offset 1" in proc.stderr
    assert len([line for line in proc.stdout.splitlines() if everything["items"][0]["name"] in line]) == 1


def test_list_packages_shows_all_54_packages(cli: Cli, channel: Callable[..., str],
                                             package_builder: Callable[..., Path]) -> None:
    target = channel("many")
    files = [str(package_builder(f"pkg{i:02d}", "1.0", "noarch")) for i in range(54)]
    cli.run("upload", "-c", target, *files)
    page = json.loads(cli.run("channel", "--list-packages", target, "--json").stdout)[target]
    assert page["total_count"] == 54 and len(page["items"]) == 54
    proc = cli.run("channel", "--list-packages", target)
    assert f"{target}: 54 package(s)" in proc.stdout
    assert sum(1 for line in proc.stdout.splitlines() if line.strip().startswith("pkg")) == 54
    assert "Showing" not in proc.stderr
    # An explicit window is kept, and says what it left out and how to see it.
    proc = cli.run("channel", "--list-packages", target, "--limit", "50")
    assert sum(1 for line in proc.stdout.splitlines() if line.strip().startswith("pkg")) == 50
    assert "Showing packages 1-50 of 54" in proc.stderr
    assert f"conda-repo channel --list-packages {target} --offset 50" in proc.stderr
    rest = json.loads(cli.run("channel", "--list-packages", target, "-o", "50", "--json").stdout)[target]
    assert [p["name"] for p in rest["items"]] == ["pkg50", "pkg51", "pkg52", "pkg53"]


def _exists(cli: Cli, name: str) -> bool:
    return cli.run("channel", "--show", name, rc=None).returncode == 0


def _spawn(cli: Cli, *args: str) -> pexpect.spawn:
    return pexpect.spawn(CONDA_REPO, list(args), env=cli.env, cwd=str(cli.home), encoding="utf-8", timeout=60)


def test_channel_remove_asks_first(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path]) -> None:
    name = channel("rm")
    cli.run("channel", "--create", f"{name}/sub")
    cli.run("upload", str(conda_packages["hello"]), "-c", name)
    # No terminal to ask and no --force: refuse, and say how.
    proc = cli.run("channel", "--remove", name, rc=2)
    assert "confirmation is needed" in proc.stderr and f"conda-repo channel --remove {name} --force" in proc.stderr
    proc = cli.run("channel", "--remove", name, input="y\n", rc=2)  # piped answers do not count either
    assert _exists(cli, name)
    # At a terminal: the question names what goes with the channel; "n" keeps it.
    child = _spawn(cli, "channel", "--remove", name)
    child.expect(rf"Remove channel {name} with its 1 package\(s\), 1 subchannel\(s\), 0 mirror\(s\)\?")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1 and "was not removed" in (child.before or "")
    assert _exists(cli, name)
    child = _spawn(cli, "channel", "--remove", name)
    child.expect(r"\[y/N\]")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and f"Channel {name} removed" in (child.before or "")
    assert not _exists(cli, name)
    # -f/--force: no question.
    other = channel("rmf")
    assert f"Channel {other} removed" in cli.run("channel", "--remove", other, "-f").stderr
    assert not _exists(cli, other)
