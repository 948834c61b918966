"""A change made through one process of a home is served at once by every other process of that
home on the machine (the change bell, ``$TAIPAN_HOME/run/bell``), not only after their poll
interval: once an upload's 201 has returned, every index answer of every worker lists the file.

The poll interval (1 s) and the refresher are left as they are: without the bell, the other
process answers from its previous publication for up to that long, and these tests fail."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

# Requests after the upload, each on a new connection (so that each may land on either worker).
AFTER = 40


@pytest.fixture
def env(database_env: dict[str, str]) -> dict[str, str]:
    """The servers' settings: one SQLite home, or one PostgreSQL database of their own."""
    return database_env


def _channel_with(server, pkg: Path) -> str:  # type: ignore[no-untyped-def]
    name = f"bell{uuid.uuid4().hex[:8]}"
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": name, "privacy": "public"}).raise_for_status()
    _upload(server, name, pkg)
    return name


def _upload(server, channel: str, pkg: Path) -> None:  # type: ignore[no-untyped-def]
    with server.client(server.admin_token()) as c:
        r = c.post(f"/channels/{channel}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
                   data={"filetype": "conda1"})
    assert r.status_code == 201, r.text


def _get(url: str) -> httpx.Response:
    """One GET on a connection of its own."""
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200, r.text
    return r


def _worker(r: httpx.Response) -> str:
    """Which server process answered: request ids start with a random prefix per process."""
    return r.headers["x-request-id"][:8]


def test_every_worker_serves_an_upload_once_it_returned(server_factory, conda_packages) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(workers=2)
    channel = _channel_with(server, conda_packages["hello"])
    url = f"{server.api}/repo/{channel}/noarch/repodata.json"
    # Both workers hold the channel's publication before the change.
    workers: set[str] = set()
    for _ in range(400):
        r = _get(url)
        assert "hello-1.0-0.conda" in r.json()["packages.conda"]
        workers.add(_worker(r))
        if len(workers) == 2:
            break
    assert len(workers) == 2, "the requests never reached the second worker"

    new = conda_packages["hello-1.1"]
    _upload(server, channel, new)
    answered: dict[str, int] = {}
    stale = []
    for i in range(AFTER):
        r = _get(url)
        answered[_worker(r)] = answered.get(_worker(r), 0) + 1
        if new.name not in r.json()["packages.conda"]:
            stale.append((i, _worker(r)))
    assert not stale, f"answers (request number, worker) without the upload: {stale}; answers per worker {answered}"
    assert len(answered) == 2, f"only one worker answered after the upload: {answered}"


def test_another_server_of_the_home_serves_an_upload_once_it_returned(
        server_factory, conda_packages, env) -> None:  # type: ignore[no-untyped-def]
    a = server_factory(env)
    b = server_factory(env, home=a.home)
    channel = _channel_with(a, conda_packages["hello"])
    index = f"{b.api}/repo/{channel}/noarch/repodata.json"
    channeldata = f"{b.api}/repo/{channel}/channeldata.json"
    for _ in range(2):  # B holds both documents, and answers them from memory
        assert "hello-1.0-0.conda" in _get(index).json()["packages.conda"]
        assert _get(channeldata).json()["packages"]["hello"]["version"] == "1.0"

    new = conda_packages["hello-1.1"]
    _upload(a, channel, new)
    for _ in range(AFTER // 2):
        assert new.name in _get(index).json()["packages.conda"]
        assert _get(channeldata).json()["packages"]["hello"]["version"] == "1.1"
