"""channel, upload, copy, move, remove and search against the real server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from cli_harness import Cli, unique


def show(cli: Cli, path: str) -> dict:
    return json.loads(cli.run("channel", "--show", path, "--json").stdout)


def files_of(cli: Cli, spec: str) -> list[dict]:
    return json.loads(cli.run("channel", "--list-files", spec, "--json").stdout)


def test_seed_examples_channels_and_copy(cli: Cli, conda_packages: dict[str, Path]) -> None:
    # The literal commands of the seed doc: these names exist once per test session.
    cli.run("channel", "--create", "snakes")
    cli.run("channel", "--create", "snakes/lua")
    cli.run("channel", "--create", "lua")
    cli.run("upload", str(conda_packages["hello"]), "-c", "snakes")
    assert "snakes::hello copied to lua" in cli.run("copy", "snakes::hello", "-d", "lua").stderr
    cli.run("copy", "snakes::hello", "-d", "snakes/lua")
    assert [f["package"] for f in files_of(cli, "lua")] == ["hello"]
    assert [f["ckey"] for f in files_of(cli, "snakes/lua::hello")] == ["noarch/hello-1.0-0.conda"]
    cli.run("remove", "snakes/lua::hello", input="y\n")
    assert files_of(cli, "snakes/lua") == []
    cli.run("channel", "--lock", "snakes")
    cli.run("channel", "--soft-lock", "lua")
    cli.run("channel", "--unlock", "snakes")
    names = [c["name"] for c in json.loads(cli.run("channel", "--list", "--json").stdout)["items"]]
    assert {"snakes", "lua"} <= set(names)
    table = cli.run("channel", "--list").stdout
    assert "Name" in table and "Privacy" in table and "snakes" in table


def test_create_show_privacy_history_remove(cli: Cli) -> None:
    name = unique("priv")
    assert f"Channel {name} created" in cli.run("channel", "--create", name).stderr
    cli.run("channel", "--create", f"{name}/sub")
    for option, privacy in (("--lock", "private"), ("--soft-lock", "authenticated"), ("--unlock", "public")):
        cli.run("channel", option, name)
        assert show(cli, name)["privacy"] == privacy
    details = json.loads(cli.run("channel", "--show", name, "--full-details", "--json").stdout)
    assert [s["name"] for s in details["subchannels"]] == ["sub"] and details["owners"] == ["admin"]
    text = cli.run("channel", "--show", name).stdout
    assert "Privacy" in text and "Owners" in text and "admin" in text
    assert show(cli, f"{name}/sub")["parent"] == name
    events = json.loads(cli.run("channel", "--history", name, "--json").stdout)["items"]
    assert "channel_created" in {e["event_type"] for e in events}
    assert "channel_created" in cli.run("channel", "--history", name, "-l", "5").stdout
    cli.run("channel", "--remove", name, "--force")
    proc = cli.run("channel", "--show", name, rc=4)
    assert len(proc.stderr.strip().splitlines()) == 1 and "does not exist" in proc.stderr


def test_bad_channel_input(cli: Cli) -> None:
    assert "Invalid channel name 'Bad'" in cli.run("channel", "--create", "Bad", rc=2).stderr
    assert "Invalid channel path" in cli.run("channel", "--create", "a/b/c", rc=2).stderr
    name = unique("dup")
    cli.run("channel", "--create", name)
    assert "already exists" in cli.run("channel", "--create", name, rc=5).stderr
    proc = cli.run("channel", "--list-packages", unique("missing"), rc=4)
    assert proc.stderr.startswith("error: ") and "(hint: " in proc.stderr and "Traceback" not in proc.stderr


def test_upload_several_files_to_several_channels(cli: Cli, channel: Callable[..., str],
                                                  conda_packages: dict[str, Path]) -> None:
    a, b = channel("up"), channel("up")
    cli.run("channel", "--create", f"{b}/dev")
    cli.run("upload", str(conda_packages["hello"]), str(conda_packages["world"]), "-c", a, "-c", f"{b}/dev")
    for path in (a, f"{b}/dev"):
        files = {(f["package"], f["platform"], f["version"]) for f in files_of(cli, path)}
        assert files == {("hello", "noarch", "1.0"), ("world", "linux-64", "2.0")}
    packages = json.loads(cli.run("channel", "--list-packages", a, "--json").stdout)[a]
    assert packages["total_count"] == 2
    paged = json.loads(cli.run("channel", "--list-packages", a, "-o", "1", "-l", "1", "--json").stdout)[a]
    assert len(paged["items"]) == 1 and paged["items"][0]["name"] == packages["items"][1]["name"]
    table = cli.run("channel", "--list-packages", a).stdout
    assert "hello" in table and "world" in table and "2 package(s)" in table
    details = json.loads(cli.run("channel", "--list-file", a, "--full-details").stdout)  # the seed's spelling
    world = next(d for d in details if d["package"] == "world")
    assert world["ckey"] == "linux-64/world-2.0-h1_0.tar.bz2" and world["filename"] == "world-2.0-h1_0.tar.bz2"
    assert world["platform"] == "linux-64" and world["version"] == "2.0"
    assert "cve_score" in world and "cve_status" in world and "metadata" in world
    assert "the same file is already there" in cli.run("upload", str(conda_packages["hello"]), "-c", a).stderr


def test_upload_default_channel_from_condarc_then_account(cli: Cli, channel: Callable[..., str],
                                                           conda_packages: dict[str, Path]) -> None:
    target = channel("rc")
    cli.condarc.write_text(f"default_channels:\n  - {target}\n")
    cli.run("upload", str(conda_packages["hello"]))
    assert [f["package"] for f in files_of(cli, target)] == ["hello"]
    cli.condarc.unlink()
    proc = cli.run("upload", str(conda_packages["hello-1.1"]))
    assert "to admin" in proc.stderr  # the account's default channel


def test_move_remove_with_versions_and_frozen_channel(cli: Cli, channel: Callable[..., str],
                                                      conda_packages: dict[str, Path]) -> None:
    src, dst = channel("src"), channel("dst")
    cli.run("upload", str(conda_packages["hello"]), str(conda_packages["hello-1.1"]),
            str(conda_packages["world"]), "-c", src)
    cli.run("move", f"{src}::hello/1.1", "-d", dst)
    assert [f["version"] for f in files_of(cli, f"{src}::hello")] == ["1.0"]
    assert [f["version"] for f in files_of(cli, f"{dst}::hello")] == ["1.1"]
    assert "No file of" in cli.run("copy", f"{src}::hello/9.9", "-d", dst, rc=4).stderr
    assert "Invalid package spec" in cli.run("copy", f"{src}:hello", "-d", dst, rc=2).stderr
    assert "no package given" in cli.run("remove", "-f", src, rc=2).stderr
    assert "Nothing was removed" in cli.run("remove", f"{src}::world", rc=1).stderr  # no answer, no -f
    assert "Channel" in cli.run("channel", "--freeze", dst).stderr
    assert show(cli, dst)["frozen"] is True
    assert "frozen" in cli.run("copy", f"{src}::world", "-d", dst, rc=1).stderr
    cli.run("channel", "--unfreeze", dst)
    cli.run("copy", f"{src}::world", "-d", dst)
    cli.run("remove", "-f", f"{src}::world", f"{src}::hello/1.0/hello-1.0-0.conda")
    assert files_of(cli, src) == []


def test_search(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path]) -> None:
    target = channel("search")
    cli.run("upload", str(conda_packages["world"]), "-c", target)
    results = json.loads(cli.run("search", "world", "--json").stdout)
    assert any(r["channel_path"] == target and r["name"] == "world" for r in results)
    table = cli.run("search", "world", "-l", "500").stdout
    header = table.strip().splitlines()[0].split()
    assert header == ["Channel", "Name", "Version", "Family", "Build", "License", "Platforms"]
    assert any(target in line and "h1_0" in line and "linux-64" in line for line in table.splitlines())


def test_auth_tokens(cli: Cli, tmp_path: Path) -> None:
    scopes = cli.run("auth", "--list-scopes").stdout.split()
    assert "artifact:download" in scopes and "channel:create" in scopes
    name = unique("tok")
    out = tmp_path / "token.txt"
    cli.run("auth", "--create", "-n", name, "-s", "channel:view", "-s", "artifact:download",
            "--max-age", "86400", "--out", str(out))
    token = out.read_text().strip()
    info = json.loads(cli.run("-t", token, "auth", "--info", "--json").stdout)
    assert info["name"] == name and sorted(info["scopes"]) == ["artifact:download", "channel:view"]
    listed = {t["name"]: t for t in json.loads(cli.run("auth", "--list", "--json").stdout)}
    assert name in listed and name in cli.run("auth", "--list").stdout
    assert "does not allow" in cli.run("-t", token, "channel", "--create", unique("no"), rc=6).stderr
    cli.run("auth", "--remove", listed[name]["id"])
    assert "not valid" in cli.run("-t", str(out), "auth", "--info", rc=3).stderr
    assert "Unknown scope" in cli.run("auth", "--create", "-n", "x", "-s", "nope:nope", rc=2).stderr
    created = json.loads(cli.run("auth", "--create", "-n", unique("all"), "--json").stdout)
    assert len(created["scopes"]) == len(scopes) and created["token"]
