"""Fixtures for driving the installed `conda-repo` executable against the shared real server.

Each test gets its own HOME (and with it REPO_CONFIG_DIR, XDG_DATA_HOME and CONDARC). Signing in is
done once per session in a template home, which each test copies, so tests stay fast but isolated.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_harness import SHARED_HOSTNAME, Cli, unique


@pytest.fixture(scope="session")
def logged_in_template(taipan_server, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("cli-template")
    cli = Cli(home, taipan_server)
    # The seed doc's "extended configuration", literally.
    cli.run("config", "--set", "sites.anaconda-server.url", taipan_server.api)
    cli.run("config", "--set", "default_site", "anaconda-server")
    cli.run("login", "--username", taipan_server.admin_username, "--password", taipan_server.admin_password,
            "--hostname", SHARED_HOSTNAME)
    return home


@pytest.fixture
def cli(logged_in_template: Path, taipan_server, tmp_path: Path) -> Cli:  # type: ignore[no-untyped-def]
    """A signed-in admin in a home of its own."""
    home = tmp_path / "home"
    shutil.copytree(logged_in_template, home)
    return Cli(home, taipan_server)


@pytest.fixture
def fresh_cli(taipan_server, tmp_path: Path) -> Cli:  # type: ignore[no-untyped-def]
    """No configuration at all."""
    home = tmp_path / "fresh-home"
    home.mkdir()
    return Cli(home, taipan_server)


@pytest.fixture
def channel(cli: Cli) -> Callable[..., str]:
    """Create a uniquely named channel through the CLI and return its name."""

    def make(prefix: str = "ch") -> str:
        name = unique(prefix)
        cli.run("channel", "--create", name)
        return name

    return make
