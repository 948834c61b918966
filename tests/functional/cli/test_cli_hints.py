"""Hints name the command the way the user ran it (issue 7, item 17): `conda-repo ...` from the
executable, `conda repo ...` from the conda plugin, whether the hint comes from the CLI or the server."""

from __future__ import annotations

import subprocess
import sys

from cli_harness import Cli, unique

PLUGIN = "import sys; from taipan.cli.conda_plugin import run; sys.exit(run(sys.argv[1:]))"


def test_hints_name_the_command_as_it_was_run(cli: Cli) -> None:
    missing = unique("nochan")
    # The server's hint says `conda repo channel --list`; run as conda-repo it must say conda-repo.
    proc = cli.run("channel", "--show", missing, rc=4)
    assert "`conda-repo channel --list`" in proc.stderr and "conda repo" not in proc.stderr
    # Run as the conda plugin (what `conda repo ...` calls): every hint says `conda repo ...`.
    as_plugin = subprocess.run([sys.executable, "-c", PLUGIN, "channel", "--show", missing], env=cli.env,
                               cwd=cli.home, capture_output=True, text=True, timeout=120)
    assert as_plugin.returncode == 4
    assert "`conda repo channel --list`" in as_plugin.stderr and "conda-repo" not in as_plugin.stderr
    name = unique("hint")
    cli.run("channel", "--create", name)
    as_plugin = subprocess.run([sys.executable, "-c", PLUGIN, "channel", "--remove", name], env=cli.env,
                               cwd=cli.home, capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
    assert f"`conda repo channel --remove {name} --force`" in as_plugin.stderr, as_plugin.stderr
    assert "conda-repo" not in as_plugin.stderr
    cli.run("channel", "--remove", name, "--force")
