"""Fixtures for the python family: channels on the shared server, and a clean environment for pip,
uv and twine run as subprocesses (no configuration of this machine leaks into them)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def token(taipan_server) -> str:  # type: ignore[no-untyped-def]
    return taipan_server.admin_token()


@pytest.fixture
def api(taipan_server, token: str) -> httpx.Client:  # type: ignore[no-untyped-def]
    with taipan_server.client(token) as c:
        yield c


@pytest.fixture
def pychannel(api: httpx.Client) -> Callable[..., str]:
    def make(prefix: str = "py", privacy: str | None = None) -> str:
        name = unique(prefix)
        body = {"name": name, **({"privacy": privacy} if privacy else {})}
        api.post("/channels", json=body).raise_for_status()
        return name

    return make


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "TWINE_"))}
    env.update({"PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1",
                "UV_NO_CONFIG": "1", "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_PYTHON_DOWNLOADS": "never",
                "UV_NO_PROGRESS": "1", "HOME": str(tmp_path / "home"), "PYTHONDONTWRITEBYTECODE": "1"})
    (tmp_path / "home").mkdir(exist_ok=True)
    return env
