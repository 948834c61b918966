"""A change made through one process of a home is served at once by every other process of that
home on the machine (the change bell, ``$TAIPAN_HOME/run/bell``), not only after their poll
interval: once an upload's 201 has returned, every index answer of every worker lists the file.

The poll interval (1 s) and the refresher are left as they are: without the bell, the other
process answers from its previous publication for up to that long, and these tests fail."""

from __future__ import annotations

import os
import subprocess
import sys
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


def test_another_server_of_the_home_applies_channel_changes_once_they_returned(
        server_factory, conda_packages) -> None:  # type: ignore[no-untyped-def]
    """Privacy and deletion, which package serving keeps in its channel cache (1 s)."""
    a = server_factory()
    b = server_factory(home=a.home)
    hidden, gone = (_channel_with(a, conda_packages["hello"]) for _ in range(2))
    urls = {ch: f"{b.api}/repo/{ch}/noarch/repodata.json" for ch in (hidden, gone)}
    for _ in range(2):  # B answers both anonymously, from memory
        for url in urls.values():
            _get(url)
    with a.client(a.admin_token()) as c:
        c.put(f"/channels/{hidden}", json={"privacy": "private"}).raise_for_status()
    for _ in range(AFTER // 2):
        assert httpx.get(urls[hidden], timeout=30).status_code == 401  # as for a missing channel
    with a.client(a.admin_token()) as c:
        assert c.delete(f"/channels/{gone}").status_code == 202
    for _ in range(AFTER // 2):
        assert httpx.get(urls[gone], timeout=30).status_code == 401


def _status(url: str, token: str | None = None) -> int:
    """The status of one GET on a connection of its own, with ``token`` as X-Auth when given."""
    return httpx.get(url, headers={"X-Auth": token} if token else {}, timeout=30).status_code


def test_another_server_of_the_home_finds_a_channel_once_it_was_created(
        server_factory, conda_packages, env) -> None:  # type: ignore[no-untyped-def]
    """A look-up that found no channel is kept in the channel cache too (1 s). Creating a channel or
    a subchannel, or renaming one, rings the bell slot of its new path, which such an entry noted:
    B finds the channel at once, where it answered 404 a moment before."""
    a = server_factory(env)
    b = server_factory(env, home=a.home)
    token = a.admin_token()
    name = f"new{uuid.uuid4().hex[:8]}"
    old, renamed = f"{name}old", f"{name}ren"
    with a.client(token) as c:
        c.post("/channels", json={"name": old, "privacy": "public"}).raise_for_status()
    urls = {path: f"{b.api}/repo/{path}/noarch/repodata.json" for path in (name, f"{name}/sub", renamed, old)}
    for _ in range(2):  # B has looked them up and keeps what it found (the second answer is from its cache)
        for path in (name, f"{name}/sub", renamed):
            assert _status(urls[path], token) == 404
        assert _status(urls[old], token) == 200

    with a.client(token) as c:
        c.post("/channels", json={"name": name, "privacy": "public"}).raise_for_status()
    for _ in range(AFTER // 4):
        assert _status(urls[name]) == 200
    _upload(b, name, conda_packages["hello"])  # through B, at once
    assert "hello-1.0-0.conda" in _get(urls[name]).json()["packages.conda"]

    with a.client(token) as c:
        c.post(f"/channels/{name}/subchannels", json={"name": "sub"}).raise_for_status()
    for _ in range(AFTER // 4):
        assert _status(urls[f"{name}/sub"]) == 200

    with a.client(token) as c:
        c.put(f"/channels/{old}", json={"name": renamed}).raise_for_status()
    for _ in range(AFTER // 4):
        assert _status(urls[renamed]) == 200
        assert _status(urls[old], token) == 404


def test_a_channel_created_elsewhere_is_not_revealed_to_those_who_may_not_see_it(
        server_factory, env) -> None:  # type: ignore[no-untyped-def]
    """A private channel created through A: B answers its owner (and admins) at once, and everyone
    else exactly as before it existed (401 anonymous, 404 with credentials). A user's own channel,
    made at the first login, is found at once too."""
    a = server_factory(env)
    b = server_factory(env, home=a.home)
    admin = a.admin_token()
    user = f"u{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", user, "--password",
                    "user-password-1"], check=True, capture_output=True,
                   env={**os.environ, "TAIPAN_HOME": str(a.home), **env})
    own = f"{b.api}/repo/{user}/noarch/repodata.json"
    for _ in range(2):
        assert _status(own, admin) == 404
    session = a.login(user, "user-password-1")  # makes the user's own channel
    for _ in range(AFTER // 4):
        assert _status(own, admin) == 200
        assert _status(own, session) == 200

    name = f"priv{uuid.uuid4().hex[:8]}"
    url = f"{b.api}/repo/{name}/noarch/repodata.json"
    before = [(_status(url), _status(url, session), _status(url, admin)) for _ in range(2)]
    assert before == [(401, 404, 404)] * 2
    with a.client(admin) as c:
        c.post("/channels", json={"name": name, "privacy": "private"}).raise_for_status()
    for _ in range(AFTER // 4):
        assert (_status(url), _status(url, session), _status(url, admin)) == (401, 404, 200)
