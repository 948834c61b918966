"""Running pip, uv and twine as subprocesses against a live server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run(cmd: list[str], env: dict[str, str], *, rc: int | None = 0, cwd: Path | None = None,
        timeout: float = 180) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if rc is not None:
        assert proc.returncode == rc, f"{cmd}\nrc={proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def twine(env: dict[str, str], url: str, files: list[Path], user: str, password: str, *extra: str,
          rc: int | None = 0) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar",
                "--repository-url", url, "-u", user, "-p", password, *extra, *map(str, files)], env, rc=rc)
