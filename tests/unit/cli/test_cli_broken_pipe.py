"""`conda-repo ... | head`: when the reader goes away, the CLI exits quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_output_into_a_closed_pipe_is_quiet(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("conda-repo"))
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "data"),
           "REPO_CONFIG_DIR": str(tmp_path / "cfg")}
    subprocess.run([exe, "config", "--set", "sites.t.url", "http://127.0.0.1:9/api"], env=env, check=True,
                   capture_output=True)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written
    try:
        proc = subprocess.run([exe, "config", "--show"], env=env, stdout=write_end, stderr=subprocess.PIPE,
                              timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 0, proc.stderr
    assert b"Unexpected error" not in proc.stderr and b"Traceback" not in proc.stderr
