"""The first complete path: upload real packages to a private channel, install them with py-rattler."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import httpx
import pytest
import rattler


def upload(client: httpx.Client, channel: str, path: Path, *, filetype: str = "conda1",
           name: str | None = None) -> httpx.Response:
    data = path.read_bytes()
    return client.post(f"/channels/{channel}/artifacts", files={"content": (name or path.name, data)},
                       data={"filetype": filetype, "size": str(len(data))})


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def solve_and_install(channel_url: str, specs: list[str], tmp: Path) -> list[str]:
    async def go() -> list[str]:
        records = await rattler.solve([rattler.Channel(channel_url)], specs,
                                      platforms=["linux-64", "noarch"], virtual_packages=[])
        await rattler.install(records, target_prefix=str(tmp / "env"), cache_dir=str(tmp / "cache"))
        return sorted(r.name.normalized for r in records)

    return asyncio.run(go())


@pytest.fixture
def private_channel(taipan_server, conda_packages) -> tuple[str, str]:
    token = taipan_server.admin_token()
    name = unique("private")
    with taipan_server.client(token) as c:
        assert c.post("/channels", json={"name": name, "privacy": "private"}).status_code == 201
        for key in ("hello", "world"):
            r = upload(c, name, conda_packages[key])
            assert r.status_code == 201, r.text
    return name, token


def test_install_from_private_channel_with_token_in_url(taipan_server, private_channel, tmp_path):
    name, token = private_channel
    url = f"{taipan_server.api}/repo/t/{token}/{name}"
    assert solve_and_install(url, ["world"], tmp_path) == ["hello", "world"]
    assert (tmp_path / "env" / "share" / "world" / "world.txt").read_text() == "world 2.0\n"
    assert (tmp_path / "env" / "share" / "hello" / "hello.txt").exists()


def test_install_without_token_fails(taipan_server, private_channel, tmp_path):
    name, _ = private_channel
    with pytest.raises(Exception) as info:
        solve_and_install(f"{taipan_server.api}/repo/{name}", ["world"], tmp_path)
    assert "401" in str(info.value) or "authentication" in str(info.value).lower()
    assert not (tmp_path / "env" / "share" / "world").exists()


def test_each_package_download_is_recorded(taipan_server, private_channel, tmp_path):
    name, token = private_channel
    solve_and_install(f"{taipan_server.api}/repo/t/{token}/{name}", ["world"], tmp_path)
    # The recorder writes in batches; the counts show up within a second or so.
    deadline = time.monotonic() + 10
    with taipan_server.client(token) as c:
        while True:
            files = c.get(f"/channels/{name}/artifacts/conda/world/files").json()["items"]
            if files[0]["download_count"] == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert files[0]["download_count"] == 1
        assert c.get(f"/channels/{name}").json()["download_count"] >= 2
    # who, which channel and file, when: the rows the download reports are made from
    import sqlite3

    with sqlite3.connect(taipan_server.home / "taipan.db") as db:
        rows = db.execute("SELECT username, channel_path, ckey, package, at FROM downloads WHERE channel_path = ?",
                          (name,)).fetchall()
    assert sorted(r[2] for r in rows) == ["linux-64/world-2.0-h1_0.tar.bz2", "noarch/hello-1.0-0.conda"]
    assert {r[0] for r in rows} == {"admin"} and all(r[4] for r in rows)


def test_public_channel_installs_anonymously(taipan_server, conda_packages, tmp_path):
    name = unique("public")
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        for key in ("hello", "world"):
            upload(c, name, conda_packages[key]).raise_for_status()
    assert solve_and_install(f"{taipan_server.api}/repo/{name}", ["world"], tmp_path) == ["hello", "world"]


def test_subchannel_upload_paths_and_install(taipan_server, conda_packages, tmp_path):
    name = unique("parent")
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        assert c.post(f"/channels/{name}/subchannels", json={"name": "lab"}).status_code == 201
        # what conda-repo-cli sends, and the documented subchannel path
        r = upload(c, f"{name}/lab", conda_packages["hello"])
        assert r.status_code == 201, r.text
        data = conda_packages["world"].read_bytes()
        r = c.post(f"/channels/{name}/subchannels/lab/artifacts",
                   files={"content": (conda_packages["world"].name, data)}, data={"filetype": "conda1"})
        assert r.status_code == 201, r.text
        assert r.json()["subchannel"] == "lab"
    url = f"{taipan_server.api}/repo/{name}/lab"
    assert solve_and_install(url, ["world"], tmp_path) == ["hello", "world"]
    # the parent channel holds nothing
    r = httpx.get(f"{taipan_server.api}/repo/{name}/noarch/repodata.json")
    assert r.json()["packages.conda"] == {}


def test_basic_auth_and_headers_reach_private_channels(taipan_server, private_channel):
    name, token = private_channel
    url = f"{taipan_server.api}/repo/{name}/noarch/repodata.json"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"X-Auth": token}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert httpx.get(url, auth=("anyone", token)).status_code == 200
    assert httpx.get(url, auth=("admin", taipan_server.admin_password)).status_code == 200
    assert httpx.get(url, auth=("admin", "wrong-password")).status_code == 401


def test_server_on_postgresql(server_factory, conda_packages, tmp_path):
    psycopg = pytest.importorskip("psycopg")
    admin_url = "postgresql://postgres@127.0.0.1:5432/test"
    try:
        conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=2)
    except psycopg.OperationalError:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    db = unique("taipan_fn").replace("-", "_")
    with conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        server = server_factory({"TAIPAN_DATABASE__URL": f"postgresql://postgres@127.0.0.1:5432/{db}"})
        token = server.admin_token()
        with server.client(token) as c:
            c.post("/channels", json={"name": "pg", "privacy": "private"}).raise_for_status()
            for key in ("hello", "world"):
                upload(c, "pg", conda_packages[key]).raise_for_status()
        assert solve_and_install(f"{server.api}/repo/t/{token}/pg", ["world"], tmp_path) == ["hello", "world"]
        assert not (server.home / "taipan.db").exists()
        server.stop()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_install_with_the_token_where_conda_puts_it(taipan_server, private_channel, tmp_path):
    """conda moves /t/<token> to just after the host when no channel_alias matches the URL, so it
    asks for http://HOST/t/<token>/api/repo/<channel>/...; that must serve the same bytes."""
    name, token = private_channel
    conda_style = f"{taipan_server.url}/t/{token}/api/repo/{name}"
    ours = f"{taipan_server.api}/repo/t/{token}/{name}"
    for path in ("noarch/repodata.json", "noarch/current_repodata.json.zst", "linux-64/repodata.json"):
        a, b = httpx.get(f"{conda_style}/{path}"), httpx.get(f"{ours}/{path}")
        assert a.status_code == b.status_code == 200
        assert a.content == b.content and a.headers["etag"] == b.headers["etag"]
    assert httpx.get(f"{taipan_server.url}/t/not-a-token/api/repo/{name}/noarch/repodata.json").status_code == 401
    assert solve_and_install(conda_style, ["world"], tmp_path) == ["hello", "world"]
    assert (tmp_path / "env" / "share" / "world" / "world.txt").read_text() == "world 2.0\n"
