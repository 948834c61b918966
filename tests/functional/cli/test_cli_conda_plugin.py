"""The `conda repo` plugin as conda loads it (entry point group "conda"), against fake conda packages
laid out like current conda, old conda and a broken install: it registers `repo`, or nothing, and
never raises into conda."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HOOKIMPL = "def hookimpl(f):\n    f.conda_impl = {}\n    return f\n"
NEW_TYPES = ("from dataclasses import dataclass, field\n\n@dataclass\nclass CondaSubcommand:\n"
             "    name: str\n    summary: str\n    action: object\n"
             "    configure_parser: object = field(default=None)\n")
OLD_PLUGINS = ("from typing import NamedTuple\n\nclass CondaSubcommand(NamedTuple):\n"
               "    name: str\n    summary: str\n    action: object\n\n" + HOOKIMPL)
LAYOUTS = {
    # conda's main branch: the types module, and no re-export in conda.plugins.
    "new": {"plugins/__init__.py": HOOKIMPL, "plugins/types.py": NEW_TYPES},
    "old": {"plugins/__init__.py": OLD_PLUGINS},
    "broken": {"plugins/__init__.py": "raise ImportError('conda.plugins is broken here')\n"},
    "moved": {"plugins/__init__.py": HOOKIMPL},  # no CondaSubcommand anywhere
    "failing": {"plugins/__init__.py": "raise RuntimeError('something else went wrong')\n"},
    "missing": None,
}
# What conda does: load the entry point module, find the hook implementation, call it, run the action.
PROBE = """
import json, sys
from importlib.metadata import entry_points
(ep,) = [e for e in entry_points(group="conda") if e.value == "taipan.cli.conda_plugin"]
module = ep.load()
hook = getattr(module, "conda_subcommands", None)
found = {"marked": hasattr(hook, "conda_impl"), "subcommands": []}
for sub in (hook() if hook else []):
    found["subcommands"].append({"name": sub.name, "summary": sub.summary})
    found["rc"] = sub.action(("--version",))
print(json.dumps(found))
"""


def probe(tmp_path: Path, layout: dict[str, str] | None) -> tuple[dict, str]:
    root = tmp_path / "site"
    if layout is not None:
        for rel, text in {"__init__.py": "", **layout}.items():
            path = root / "conda" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    root.mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    *printed, last = proc.stdout.strip().splitlines()
    return json.loads(last), "\n".join(printed)


@pytest.mark.parametrize("layout", ["new", "old"])
def test_registers_repo_on_current_and_old_conda(tmp_path: Path, layout: str) -> None:
    found, printed = probe(tmp_path, LAYOUTS[layout])
    assert found["marked"] and [s["name"] for s in found["subcommands"]] == ["repo"]
    # The action is our CLI, named as the user called it.
    assert found["rc"] == 0 and "conda repo Command line client (version" in printed


@pytest.mark.parametrize("layout", ["broken", "moved", "failing", "missing"])
def test_never_breaks_conda(tmp_path: Path, layout: str) -> None:
    found, _ = probe(tmp_path, LAYOUTS[layout])
    assert found["subcommands"] == []
