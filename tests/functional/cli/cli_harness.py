"""The `conda-repo` subprocess harness shared by the CLI functional tests (imported by name)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote_plus

CONDA_REPO = str(Path(sys.executable).parent / "conda-repo")
SHARED_HOSTNAME = "functional-cli-shared"


@dataclass
class Cli:
    home: Path
    server: object  # tests/conftest.py's ServerProcess

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CONDA", "REPO_CONFIG", "SSL_NO_VERIFY", "XDG_"))}
        env.update(HOME=str(self.home), XDG_DATA_HOME=str(self.home / ".local" / "share"),
                   REPO_CONFIG_DIR=str(self.home / ".conda"), CONDARC=str(self.condarc),
                   CONDA_ROOT=str(self.home / "conda-root"), NO_COLOR="1", COLUMNS="200")
        return env

    @property
    def condarc(self) -> Path:
        return self.home / ".condarc"

    def run(self, *args: str, input: str | None = None, rc: int | None = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([CONDA_REPO, *args], env=self.env, cwd=self.home, input=input, text=True,
                              capture_output=True, timeout=120,
                              stdin=None if input is not None else subprocess.DEVNULL)
        if rc is not None:
            assert proc.returncode == rc, f"rc={proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc

    def token_file(self, url: str, kind: str = "tokens") -> Path:
        base = self.home / ".conda" / "tokens" if kind == "tokens" else self.home / ".local/share/binstar"
        return base / (quote_plus(url) + ".token")

    def token(self) -> str:
        return self.token_file(self.server.api).read_text().strip()  # type: ignore[attr-defined]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
