"""`taipan worker` with Redis unreachable says so and exits, instead of logging tracebacks forever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TAIPAN = str(Path(sys.executable).parent / "taipan")


def test_worker_exits_with_a_clear_error_when_redis_is_down(tmp_path: Path) -> None:
    env = {**os.environ, "TAIPAN_HOME": str(tmp_path / "home"), "TAIPAN_JOBS__BACKEND": "redis",
           "TAIPAN_JOBS__REDIS_URL": "redis://user:s3cretpw@127.0.0.1:1/0"}
    try:
        proc = subprocess.run([TAIPAN, "worker"], env=env, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("the worker kept running without Redis") from exc
    assert proc.returncode == 2
    assert "cannot reach Redis" in proc.stderr and "s3cretpw" not in proc.stderr
    assert "Traceback" not in proc.stderr
