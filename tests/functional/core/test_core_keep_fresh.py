"""Package serving's caches are kept fresh in the background for what clients use
(``TAIPAN_SERVER__KEEP_FRESH_SECONDS``), so that the first request after a pause is answered from
memory like the ones before it; what another process changes (a revoked token, a channel made
private, a new publication) is still seen within the same bounds as without it."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable

import httpx
import msgpack
import pytest
import zstandard

# Longer than every cache's own time (credentials 0.5 s, channels and publications 1 s).
PAUSE = 2.5


@pytest.fixture
def env(database_env: dict[str, str]) -> dict[str, str]:
    """The servers' settings: one SQLite home, or one PostgreSQL database of their own."""
    return database_env


def _full_path_requests(server) -> float:  # type: ignore[no-untyped-def]
    """How many package-serving GETs and HEADs this server did not answer from memory."""
    r = httpx.get(f"{server.url}/metrics", headers={"X-Auth": server.admin_token()})
    r.raise_for_status()
    m = re.search(r"^taipan_repo_full_path_requests_total (\S+)$", r.text, re.M)
    assert m is not None, "the metric is missing"
    return float(m.group(1))


def _serving_channel(server, conda_packages, token: str) -> tuple[list[str], dict[str, str]]:  # type: ignore[no-untyped-def]
    """A private channel holding one package; the URLs of its index and package, and the headers
    that may read them (a download token, so that the credential cache takes part too)."""
    name = f"fresh{uuid.uuid4().hex[:8]}"
    pkg = conda_packages["hello"]
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": name, "privacy": "private"}).raise_for_status()
        c.post(f"/channels/{name}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
    urls = [f"{server.api}/repo/{name}/noarch/repodata.json", f"{server.api}/repo/{name}/noarch/{pkg.name}"]
    return urls, {"X-Auth": token}


def _download_token(server) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A new token of the admin that may only download: its secret and id."""
    r = httpx.post(f"{server.api}/account/tokens", json={"name": uuid.uuid4().hex[:8], "scopes": ["artifact:download"]},
                   headers={"X-Auth": server.admin_token()})
    r.raise_for_status()
    return r.json()["token"], r.json()["id"]


def _after_pauses(server, urls: list[str], headers: dict[str, str], rounds: int) -> list[float]:  # type: ignore[no-untyped-def]
    """For each round: pause longer than every cache's time, fetch ``urls`` and say how many of
    those requests took the full path."""
    taken = []
    for _ in range(rounds):
        time.sleep(PAUSE)
        before = _full_path_requests(server)
        for url in urls:
            assert httpx.get(url, headers=headers).status_code == 200
        taken.append(_full_path_requests(server) - before)
    return taken


def _warm(urls: list[str], headers: dict[str, str]) -> None:
    for _ in range(2):  # the first fills the caches (full path), the second is answered from them
        for url in urls:
            assert httpx.get(url, headers=headers).status_code == 200


def test_requests_after_a_pause_are_answered_from_memory(server_factory, conda_packages) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    urls, headers = _serving_channel(server, conda_packages, _download_token(server)[0])
    _warm(urls, headers)
    # Each round is a client run after a pause: its index and package requests are all answered
    # from memory. A round may lose that only if the refresher thread did not run for a quarter of
    # a second (a machine loaded beyond reason), so a single clean round out of three is asked.
    taken = _after_pauses(server, urls, headers, rounds=3)
    assert 0 in taken, f"full-path requests after each pause: {taken}"


def test_without_keep_fresh_the_first_request_after_a_pause_takes_the_full_path(
        server_factory, conda_packages) -> None:  # type: ignore[no-untyped-def]
    # The observable of the test above, and what it guards against.
    server = server_factory({"TAIPAN_SERVER__KEEP_FRESH_SECONDS": "0"})
    urls, headers = _serving_channel(server, conda_packages, _download_token(server)[0])
    _warm(urls, headers)
    assert all(n >= 1 for n in _after_pauses(server, urls, headers, rounds=2))


def _until(deadline_s: float, check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"{what} not seen within {deadline_s} s"
        time.sleep(0.05)


def test_another_process_s_changes_are_seen_while_kept_fresh(server_factory, conda_packages, env) -> None:  # type: ignore[no-untyped-def]
    a = server_factory(env)
    b = server_factory(env, home=a.home)
    token, token_id = _download_token(a)
    urls, headers = _serving_channel(a, conda_packages, token)
    public = f"pub{uuid.uuid4().hex[:8]}"
    with a.client(a.admin_token()) as c:
        c.post("/channels", json={"name": public, "privacy": "public"}).raise_for_status()
        pkg = conda_packages["hello"]
        c.post(f"/channels/{public}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
    index_b = urls[0].replace(a.api, b.api)
    public_b = f"{b.api}/repo/{public}/noarch/repodata.json"
    # B serves both channels from memory, its caches kept fresh across a pause.
    _warm([index_b, public_b], headers)
    _warm([public_b], {})
    assert 0 in _after_pauses(b, [index_b], headers, rounds=3)

    # A new publication made by A is served by B.
    newer = conda_packages["hello-1.1"]
    with a.client(a.admin_token()) as c:
        c.post(f"/channels/{public}/artifacts", files={"content": (newer.name, newer.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
    _until(10, lambda: newer.name in httpx.get(public_b).json()["packages.conda"], "A's new publication")

    # A channel made private through A is refused to anonymous callers by B.
    with a.client(a.admin_token()) as c:
        c.put(f"/channels/{public}", json={"privacy": "private"}).raise_for_status()
    _until(10, lambda: httpx.get(public_b).status_code == 401, "the channel made private")

    # A token revoked through A is refused by B.
    assert httpx.delete(f"{a.api}/account/tokens/{token_id}", headers={"X-Auth": a.admin_token()}).status_code == 204
    _until(10, lambda: httpx.get(index_b, headers=headers).status_code == 401, "the revoked token")


def test_after_an_upload_a_client_s_first_run_takes_the_full_path_once(server_factory, conda_packages,
                                                                       package_builder) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    name = f"up{uuid.uuid4().hex[:8]}"
    pkgs = [conda_packages["hello"], conda_packages["hello-1.1"]]
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": name, "privacy": "public"}).raise_for_status()
        for pkg in pkgs:
            c.post(f"/channels/{name}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
                   data={"filetype": "conda1"}).raise_for_status()
    base = f"{server.api}/repo/{name}/noarch"
    r = httpx.get(f"{base}/repodata_shards.msgpack.zst")  # the first request builds the publication
    assert r.status_code == 200
    index = msgpack.unpackb(zstandard.ZstdDecompressor().decompress(r.content))
    before = _full_path_requests(server)
    # The shard this process just built is in memory, not read back from the blob store; the first
    # package looks up the subdir's files at once, so the second is answered from memory.
    assert httpx.get(f"{base}/shards/{index['shards']['hello'].hex()}.msgpack.zst").status_code == 200
    for pkg in pkgs:
        assert httpx.get(f"{base}/{pkg.name}").status_code == 200
    assert _full_path_requests(server) - before == 1

    # In a channel in use, an upload is published in the background, and the files of the subdir
    # that was being downloaded are looked up again at once: a client that starts after the
    # upload is answered from memory (one clean round out of three, as above).
    taken = []
    for i in range(3):
        pkg = package_builder("hello", f"1.2.{i}", "noarch")
        with server.client(server.admin_token()) as c:
            c.post(f"/channels/{name}/artifacts", files={"content": (pkg.name, pkg.read_bytes())},
                   data={"filetype": "conda1"}).raise_for_status()
        time.sleep(PAUSE)
        before = _full_path_requests(server)
        assert httpx.get(f"{base}/repodata_shards.msgpack.zst").status_code == 200
        assert httpx.get(f"{base}/{pkg.name}").status_code == 200
        taken.append(_full_path_requests(server) - before)
    assert 0 in taken, f"full-path requests after each upload: {taken}"


def test_channeldata_and_frozen_channels_after_a_pause_are_answered_from_memory(server_factory,
                                                                                conda_packages) -> None:  # type: ignore[no-untyped-def]
    """channeldata.json is kept fresh like the subdirs' indexes, and so is a frozen channel (its
    index is refreshed like any other's, and what is written to it meanwhile is not served)."""
    server = server_factory()
    token = _download_token(server)[0]
    urls, headers = _serving_channel(server, conda_packages, token)
    channeldata = urls[0].replace("noarch/repodata.json", "channeldata.json")
    frozen_urls, _ = _serving_channel(server, conda_packages, token)
    name = frozen_urls[0].split("/repo/", 1)[1].split("/", 1)[0]
    with server.client(server.admin_token()) as c:
        c.put(f"/channels/{name}", json={"frozen": True}).raise_for_status()
    for wanted in ([channeldata], frozen_urls):
        _warm(wanted, headers)
        taken = _after_pauses(server, wanted, headers, rounds=3)
        assert 0 in taken, f"full-path requests after each pause of {wanted}: {taken}"


def test_credentials_used_before_a_pause_longer_than_a_minute_are_answered_from_memory(
        server_factory, conda_packages) -> None:  # type: ignore[no-untyped-def]
    """A credential lasts in memory while used within server.keep_fresh_seconds (default 300 s), not
    a fixed minute after it was looked up: a client run after a pause of more than a minute is
    answered from memory (the channel and the index are kept fresh meanwhile)."""
    server = server_factory()
    urls, headers = _serving_channel(server, conda_packages, _download_token(server)[0])
    _warm(urls, headers)
    time.sleep(45)  # used again at 45 s: a lookup of its own (60 s) would expire at 60 s
    _warm(urls, headers)
    time.sleep(30)
    before = _full_path_requests(server)
    for url in urls:
        assert httpx.get(url, headers=headers).status_code == 200
    assert _full_path_requests(server) - before == 0
