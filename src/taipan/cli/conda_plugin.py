"""`conda repo ...` as a conda plugin. conda is optional: without it this module imports and does nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

try:
    from conda import plugins
except ImportError:  # the light client is installed without conda
    plugins = None


def run(args: Sequence[str]) -> int:
    from taipan.cli.main import main

    return main(list(args), prog="conda repo")


if plugins is not None:

    @plugins.hookimpl
    def conda_subcommands() -> Iterator[Any]:
        yield plugins.CondaSubcommand(
            name="repo", summary="Manage channels and packages on a Taipan server (conda-repo).", action=run)
