"""Unit-test isolation for the CLI: every test gets its own HOME, config dir, token dirs and condarc."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from taipan.cli import context
from taipan.client import TaipanClient

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("REPO_CONFIG_DIR", str(home / ".conda"))
    monkeypatch.setenv("CONDARC", str(home / ".condarc"))
    monkeypatch.setenv("CONDA_ROOT", str(tmp_path / "conda-root"))
    for var in ("CONDA_PREFIX", "SSL_NO_VERIFY", "CONDA_EXE"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture
def mock_server(monkeypatch: pytest.MonkeyPatch) -> Callable[[Handler], list[httpx.Request]]:
    """Route the CLI's TaipanClient to a handler; returns the list of requests it saw."""

    def install(handler: Handler) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        def make(*args: object, **kwargs: object) -> TaipanClient:
            return TaipanClient(*args, transport=httpx.MockTransport(record), **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(context, "TaipanClient", make)
        return seen

    return install


def _write_site(home: Path, url: str = "https://repo.example.com/api") -> None:
    conf = home / ".conda"
    conf.mkdir(exist_ok=True)
    (conf / "repo-cli-config.yaml").write_text(f"sites:\n  prod:\n    url: {url}\ndefault_site: prod\n")


@pytest.fixture
def write_site() -> Callable[..., None]:
    """Write a user config whose default site is ``url`` (pytest has no package to import helpers from)."""
    return _write_site
