"""`conda repo ...` as a conda subcommand plugin.

conda imports this module (entry point group "conda") for every conda command, so it must never fail:
without conda, with a conda whose plugin types moved (`conda.plugins.types.CondaSubcommand` since the
old re-export `conda.plugins.CondaSubcommand` went away), or with a broken install, it imports cleanly
and registers nothing. Only the standard library is imported here; the CLI itself is imported when
`conda repo` runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

SUMMARY = "Manage channels and packages on a Taipan server (conda-repo)."


def run(args: Sequence[str]) -> int:
    """The subcommand's action: conda passes the arguments after `repo` (a tuple, or a list)."""
    from taipan.cli.main import main

    return main(list(args), prog="conda repo")


def _plugin_api() -> tuple[Callable[[Any], Any], type] | None:
    """conda's hookimpl marker and CondaSubcommand type, wherever this conda keeps them; None when
    there is no usable conda (anything may go wrong in a foreign package's import)."""
    try:
        from conda import plugins

        try:
            from conda.plugins.types import CondaSubcommand
        except ImportError:  # conda before the types module: the old re-export
            CondaSubcommand = plugins.CondaSubcommand
        return plugins.hookimpl, CondaSubcommand
    except Exception as exc:  # must not break conda, whatever the cause
        logging.getLogger(__name__).debug("conda repo plugin disabled: %s", exc)
        return None


def _subcommands(subcommand_type: type) -> Iterator[Any]:
    try:
        command = subcommand_type(name="repo", summary=SUMMARY, action=run)
    except Exception as exc:  # a changed signature must not break conda either
        logging.getLogger(__name__).debug("conda repo plugin disabled: %s", exc)
        return
    yield command


def _register() -> Callable[[], Iterator[Any]] | None:
    api = _plugin_api()
    if api is None:
        return None
    hookimpl, subcommand_type = api

    def conda_subcommands() -> Iterator[Any]:
        yield from _subcommands(subcommand_type)

    try:
        return hookimpl(conda_subcommands)
    except Exception as exc:
        logging.getLogger(__name__).debug("conda repo plugin disabled: %s", exc)
        return None


# pluggy finds the hook by this module attribute's name; without a usable conda there is none.
_hook = _register()
if _hook is not None:
    conda_subcommands = _hook
