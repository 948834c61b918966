"""A package uploaded with the CLI installs with py-rattler through the token the CLI stored; the wizard."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pexpect
import yaml
from cli_harness import CONDA_REPO, Cli


def _await(value: Any) -> Any:
    return asyncio.run(value) if inspect.isawaitable(value) else value


def wait_for_index(url: str, name: str, subdir: str, deadline: float = 30.0) -> None:
    """Indexing runs after the upload's commit; wait until repodata names the package."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        r = httpx.get(f"{url}/{subdir}/repodata.json", timeout=10)
        if r.status_code == 200 and any(p["name"] == name for p in
                                        {**r.json().get("packages", {}),
                                         **r.json().get("packages.conda", {})}.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never appeared in {url}/{subdir}/repodata.json")


def test_rattler_installs_with_the_token_the_cli_stored(cli: Cli, channel: Callable[..., str],
                                                         conda_packages: dict[str, Path], tmp_path: Path) -> None:
    import rattler

    name = channel("conda")
    cli.run("upload", str(conda_packages["hello"]), str(conda_packages["world"]), "-c", name)
    cli.run("channel", "--lock", name)  # private: only the token gets in
    server = cli.server
    token = cli.token_file(server.api + "/repo", "binstar").read_text()  # type: ignore[attr-defined]
    assert token == cli.token()
    anonymous = httpx.get(f"{server.url}/api/repo/{name}/noarch/repodata.json")  # type: ignore[attr-defined]
    assert anonymous.status_code in (401, 403, 404)
    channel_url = f"{server.url}/api/repo/t/{token}/{name}"  # type: ignore[attr-defined]
    wait_for_index(channel_url, "world", "linux-64")
    wait_for_index(channel_url, "hello", "noarch")
    gateway = rattler.Gateway(cache_dir=tmp_path / "cache", default_config=rattler.SourceConfig())
    records = _await(rattler.solve([rattler.Channel(channel_url)], ["world"], gateway=gateway,
                                   platforms=["linux-64", "noarch"], virtual_packages=[]))
    assert sorted(r.name.normalized for r in records) == ["hello", "world"]
    prefix = tmp_path / "env"
    _await(rattler.install(records, target_prefix=prefix, cache_dir=tmp_path / "pkgs", show_progress=False))
    assert (prefix / "share" / "hello" / "hello.txt").read_text() == "hello 1.0\n"
    assert (prefix / "share" / "world" / "world.txt").exists()


def test_wizard_through_its_prompts_and_restore(cli: Cli, channel: Callable[..., str]) -> None:
    first, second = channel("wiz"), channel("wiz")
    original = b"# my own settings\nchannels:\n  - conda-forge  # keep me\nshow_channel_urls: true\n"
    cli.condarc.write_bytes(original)
    child = pexpect.spawn(CONDA_REPO, ["wizard"], env=cli.env, encoding="utf-8", timeout=30)
    child.expect("Conda configuration wizard.")
    child.expect(f"The CondaRC path is {cli.condarc}")
    child.expect("The following channels are available:")
    child.expect(first)
    child.expect("default_channels\r\nIt is common to add mirror channels here.\r\n: ")
    child.sendline("no-such-channel")
    child.expect("'no-such-channel' does not exist")
    child.expect("At least one existing channel")
    child.expect(": ")
    child.sendline(f"{first} no-such-channel")
    child.expect("You may leave this blank.\r\n: ")
    child.sendline(second)
    child.expect("The following Conda configuration will be applied")
    child.expect(r"\[Y, n\]: ")
    child.sendline("y")
    child.expect(f"Backing up your current condarc file to {cli.condarc}.backup")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    host = cli.server.url  # type: ignore[attr-defined]
    assert yaml.safe_load(cli.condarc.read_text()) == {
        "channels": ["defaults", second], "show_channel_urls": True,
        "channel_alias": f"{host}/api/repo", "default_channels": [first]}
    assert Path(str(cli.condarc) + ".backup").read_bytes() == original
    cli.run("wizard", "--restore")
    assert cli.condarc.read_bytes() == original


def test_wizard_piped_file_option(cli: Cli, channel: Callable[..., str], tmp_path: Path) -> None:
    name = channel("wizf")
    target = tmp_path / "project.condarc"
    cli.run("wizard", "--file", str(target), input=f"{name}\n\ny\n")
    assert yaml.safe_load(target.read_text())["default_channels"] == [name]
    assert target.with_name("project.condarc.backup").read_bytes() == b""
    cli.run("wizard", "--file", str(target), "--restore")
    assert target.read_bytes() == b""
    assert "No conda environment is active" in cli.run("wizard", "--env", rc=1).stderr


def test_large_upload_shows_progress_on_a_terminal(cli: Cli, channel: Callable[..., str],
                                                   package_builder: Callable[..., Path]) -> None:
    import secrets

    big = package_builder("bigpkg", "1.0", "noarch", content=secrets.token_hex(1_500_000))
    assert big.stat().st_size > 1024 * 1024
    name = channel("big")
    child = pexpect.spawn(CONDA_REPO, ["upload", str(big), "-c", name, "-t", "conda"], env=cli.env,
                          encoding="utf-8", timeout=60)
    child.expect(f"{big.name} -> {name}")  # the progress bar's label
    child.expect(f"Uploaded {big.name} to {name}")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
