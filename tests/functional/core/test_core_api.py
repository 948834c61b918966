"""The management API as conda-repo-cli uses it: accounts, tokens, channels, artifacts, bulk, search."""

from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def upload(c: httpx.Client, channel: str, path) -> httpx.Response:
    return c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())},
                  data={"filetype": "conda1", "size": str(path.stat().st_size)})


def make_user(server, username: str, password: str = "user-password-1") -> str:
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", username, "--password",
                    password], check=True, env={"TAIPAN_HOME": str(server.home), "PATH": "/usr/bin"},
                   capture_output=True)
    r = httpx.post(f"{server.api}/auth/login", json={"username": username, "password": password})
    r.raise_for_status()
    session = r.json()["token"]
    r = httpx.post(f"{server.api}/account/tokens", json={"name": "t"},
                   headers={"Authorization": f"Bearer {session}"})
    return r.json()["token"]


def test_login_session_and_token_lifecycle(taipan_server):
    api = taipan_server.api
    r = httpx.post(f"{api}/auth/login", json={"username": "admin", "password": taipan_server.admin_password})
    assert r.status_code == 200
    session = r.json()["token"]
    bearer = {"Authorization": f"Bearer {session}"}
    # JWT-shaped: the payload carries the roles, as conda-repo-cli reads them
    import base64
    import json
    payload = json.loads(base64.urlsafe_b64decode(session.split(".")[1] + "=="))
    assert "admin" in payload["realm_access"]["roles"]
    scopes = httpx.get(f"{api}/account/scopes", headers=bearer).json()["scopes"]
    assert "artifact:download" in scopes and "channel:create" in scopes
    r = httpx.post(f"{api}/account/tokens", headers=bearer,
                   json={"name": "repo-cli-token-host", "expires_at": "2099-01-01", "scopes": scopes})
    assert r.status_code == 400  # too far away
    r = httpx.post(f"{api}/account/tokens", headers=bearer, json={"name": "repo-cli-token-host",
                                                                  "scopes": scopes})
    assert r.status_code == 200 and set(r.json()) >= {"token", "id"}
    token, token_id = r.json()["token"], r.json()["id"]
    assert len(token) == 48 and all(ch in "0123456789abcdef" for ch in token)
    listed = httpx.get(f"{api}/account/tokens", headers=bearer).json()["items"]
    item = next(t for t in listed if t["id"] == token_id)
    assert item["name"] == "repo-cli-token-host" and item["type"] == "scope" and "token" not in item
    info = httpx.get(f"{api}/account/token-info", headers={"X-Auth": token}).json()
    assert info["id"] == token_id and info["expires_at"]
    account = httpx.get(f"{api}/account", headers={"X-Auth": token}).json()
    assert account["username"] == "admin" and account["roles"] == ["admin"]
    assert account["default_channel_name"] == "admin"
    # refresh (conda-repo-cli's PUT {}): a new secret, and the old one keeps working
    r = httpx.put(f"{api}/account/tokens/{token_id}", headers=bearer, json={})
    assert r.status_code == 200 and r.json()["id"] == token_id
    new = r.json()["token"]
    assert httpx.get(f"{api}/account", headers={"X-Auth": token}).status_code == 200
    assert httpx.get(f"{api}/account", headers={"X-Auth": new}).status_code == 200
    # a rotation asked for explicitly revokes the earlier secrets
    r = httpx.put(f"{api}/account/tokens/{token_id}", headers=bearer, json={"revoke_previous": True})
    newest = r.json()["token"]
    assert [httpx.get(f"{api}/account", headers={"X-Auth": t}).status_code for t in (token, new, newest)] == \
        [401, 401, 200]
    assert httpx.delete(f"{api}/account/tokens/{token_id}", headers=bearer).status_code == 204
    assert httpx.get(f"{api}/account", headers={"X-Auth": newest}).status_code == 401
    assert httpx.delete(f"{api}/account/tokens/{token_id}", headers=bearer).status_code == 404


def test_tokens_are_stored_only_as_hashes(taipan_server):
    import sqlite3

    token = taipan_server.admin_token()
    raw = (taipan_server.home / "taipan.db").read_bytes()
    assert token.encode() not in raw
    with sqlite3.connect(taipan_server.home / "taipan.db") as db:
        hashes = [h for (h,) in db.execute("SELECT password_hash FROM users")]
    assert all(h.startswith("$argon2") for h in hashes)


def test_channel_crud_privacy_counts_and_history(taipan_server, conda_packages):
    name = unique("crud")
    with taipan_server.client(taipan_server.admin_token()) as c:
        r = c.post("/channels", json={"name": name})
        assert r.status_code == 201
        ch = r.json()
        assert ch["privacy"] == "public" and ch["owners"] == ["admin"] and ch["artifact_count"] == 0
        assert set(ch) >= {"id", "name", "description", "privacy", "artifact_count", "download_count",
                           "subchannel_count", "group_count", "mirror_count", "filters", "owners",
                           "created", "updated"}
        assert c.post("/channels", json={"name": name}).status_code == 409
        assert c.post(f"/channels/{name}/subchannels", json={"name": "lua"}).status_code == 201
        sub = c.get(f"/channels/{name}/subchannels/lua").json()
        assert sub["parent"] == name and sub["name"] == "lua"
        assert c.get(f"/channels/{name}/subchannels").json()["total_count"] == 1
        upload(c, name, conda_packages["hello"]).raise_for_status()
        upload(c, name, conda_packages["hello-1.1"]).raise_for_status()
        upload(c, name, conda_packages["world"]).raise_for_status()
        ch = c.get(f"/channels/{name}").json()
        assert ch["artifact_count"] == 2 and ch["subchannel_count"] == 1
        for privacy in ("private", "authenticated", "public"):
            r = c.put(f"/channels/{name}", json={"privacy": privacy})
            assert r.status_code == 200 and r.json()["privacy"] == privacy
        assert c.put(f"/channels/{name}", json={"privacy": "secret"}).status_code == 400
        assert c.put(f"/channels/{name}", json={"color": "red"}).status_code == 400
        r = c.put(f"/channels/{name}", json={"description": "Snakes and more"})
        assert r.json()["description"] == "Snakes and more"
        history = c.get(f"/channels/{name}/history", params={"limit": 100}).json()
        types = [e["event_type"] for e in history["items"]]
        assert types[-1] == "channel_created"
        assert types.count("artifact_uploaded") == 3 and "channel_updated" in types
        assert set(history["items"][0]) == {"event_id", "event_type", "created", "data", "meta"}
        assert c.get(f"/channels/{name}/history", params={"limit": 2}).json()["items"].__len__() == 2
        assert c.delete(f"/channels/{name}/subchannels/lua").status_code == 202
        assert c.get(f"/channels/{name}/subchannels/lua").status_code == 404
        assert c.delete(f"/channels/{name}").status_code == 202
        assert c.get(f"/channels/{name}").status_code == 404
        # a missing channel is answered like a hidden one: 401 for anonymous package requests
        assert httpx.get(f"{taipan_server.api}/repo/{name}/noarch/repodata.json").status_code == 401
        assert c.get(f"/repo/{name}/noarch/repodata.json").status_code == 404


def test_privacy_levels_for_other_users(taipan_server, conda_packages):
    other = make_user(taipan_server, unique("user").replace("-", "_"))
    name = unique("levels")
    admin = taipan_server.client(taipan_server.admin_token())
    admin.post("/channels", json={"name": name, "privacy": "private"}).raise_for_status()
    upload(admin, name, conda_packages["hello"]).raise_for_status()
    repo = f"{taipan_server.api}/repo/{name}/noarch/repodata.json"
    anon_list = [c["name"] for c in httpx.get(f"{taipan_server.api}/channels").json()["items"]]
    other_list = [c["name"] for c in httpx.get(f"{taipan_server.api}/channels",
                                               headers={"X-Auth": other}).json()["items"]]
    assert name not in anon_list and name not in other_list
    # a channel the user may not see is answered as if it did not exist
    assert httpx.get(repo, headers={"X-Auth": other}).status_code == 404
    assert httpx.get(f"{taipan_server.api}/channels/{name}/artifacts", headers={"X-Auth": other}).status_code == 404
    admin.put(f"/channels/{name}", json={"privacy": "authenticated"}).raise_for_status()
    import time
    time.sleep(1.1)  # the serving layer caches channel privacy for a second
    assert httpx.get(repo, headers={"X-Auth": other}).status_code == 200
    assert httpx.get(repo).status_code == 401
    # others can read but never write
    assert upload(httpx.Client(base_url=taipan_server.api, headers={"X-Auth": other}), name,
                  conda_packages["hello-1.1"]).status_code == 403
    assert httpx.put(f"{taipan_server.api}/channels/{name}", json={"privacy": "public"},
                     headers={"X-Auth": other}).status_code == 403
    assert httpx.delete(f"{taipan_server.api}/channels/{name}", headers={"X-Auth": other}).status_code == 403
    # the user's own default channel was created on account creation and is theirs
    mine = httpx.get(f"{taipan_server.api}/account/channels", headers={"X-Auth": other}).json()
    assert mine["total_count"] == 1 and mine["items"][0]["privacy"] == "private"
    admin.close()


def test_artifacts_files_bulk_and_search(taipan_server, conda_packages):
    src, dst = unique("src"), unique("dst")
    with taipan_server.client(taipan_server.admin_token()) as c:
        for ch in (src, dst):
            c.post("/channels", json={"name": ch}).raise_for_status()
        c.post(f"/channels/{dst}/subchannels", json={"name": "lua"}).raise_for_status()
        for key in ("hello", "hello-1.1", "world"):
            upload(c, src, conda_packages[key]).raise_for_status()
        arts = c.get(f"/channels/{src}/artifacts").json()
        assert arts["total_count"] == 2
        hello = next(a for a in arts["items"] if a["name"] == "hello")
        assert hello["file_count"] == 2 and hello["metadata"]["version"] == "1.1"
        assert hello["metadata"]["subdirs"] == ["noarch"] and hello["family"] == "conda"
        assert set(hello) >= {"name", "family", "channel", "subchannel", "privacy", "metadata",
                              "download_count", "file_count", "cve_count", "updated_at"}
        assert c.get(f"/channels/{src}/artifacts", params={"limit": 1}).json()["items"].__len__() == 1
        files = c.get(f"/channels/{src}/artifacts/conda/hello/files").json()
        assert files["total_count"] == 2
        f = files["items"][0]
        assert f["ckey"] == "noarch/hello-1.0-0.conda" and f["name"] == "hello-1.0-0.conda"
        assert f["metadata"]["index.json"]["name"] == "hello"
        assert f["metadata"]["repodata_record.json"]["version"] == "1.0"
        assert f["url"].endswith(f"/api/repo/{src}/noarch/hello-1.0-0.conda") and len(f["sha256"]) == 64
        assert c.get(f"/channels/{src}/artifacts/conda/nothing/files").status_code == 404
        # copy one file into a subchannel, then the whole package into a channel
        r = c.put(f"/channels/{src}/artifacts/bulk", json={
            "action": "copy", "items": [{"name": "hello", "family": "conda", "ckey": "noarch/hello-1.0-0.conda"}],
            "target_channel": dst, "target_subchannel": "lua"})
        assert r.status_code == 202
        r = c.put(f"/channels/{src}/artifacts/bulk", json={
            "action": "copy", "items": [{"name": "hello", "family": "conda"}], "target_channel": dst})
        assert r.status_code == 202
        dst_files = c.get(f"/channels/{dst}/artifacts/conda/hello/files").json()["items"]
        src_files = c.get(f"/channels/{src}/artifacts/conda/hello/files").json()["items"]
        assert {f["sha256"] for f in dst_files} == {f["sha256"] for f in src_files}  # the blob is shared
        # copying again conflicts; nothing changes
        r = c.put(f"/channels/{src}/artifacts/bulk", json={
            "action": "copy", "items": [{"name": "hello", "family": "conda"}], "target_channel": dst})
        assert r.status_code == 409 and r.json()["code"] == "file_exists"
        # move world out of src
        r = c.put(f"/channels/{src}/artifacts/bulk", json={
            "action": "move", "items": [{"name": "world", "family": "conda"}], "target_channel": dst})
        assert r.status_code == 202
        assert c.get(f"/channels/{src}/artifacts/conda/world/files").status_code == 404
        repo = httpx.get(f"{taipan_server.api}/repo/{dst}/linux-64/repodata.json").json()
        assert "world-2.0-h1_0.tar.bz2" in repo["packages"]
        lua = httpx.get(f"{taipan_server.api}/repo/{dst}/lua/noarch/repodata.json").json()
        assert list(lua["packages.conda"]) == ["hello-1.0-0.conda"]
        # delete, and the package files of the copy still serve (the shared blob is kept)
        r = c.put(f"/channels/{src}/artifacts/bulk", json={"action": "delete",
                                                           "items": [{"name": "hello", "family": "conda"}]})
        assert r.status_code == 202
        assert c.get(f"/channels/{src}/artifacts").json()["total_count"] == 0
        got = httpx.get(f"{taipan_server.api}/repo/{dst}/noarch/hello-1.0-0.conda")
        assert got.content == conda_packages["hello"].read_bytes()
        # bad bulk requests
        assert c.put(f"/channels/{src}/artifacts/bulk", json={"action": "zap", "items": [{"name": "x"}]}
                     ).status_code == 400
        assert c.put(f"/channels/{dst}/artifacts/bulk", json={"action": "copy", "items": [{"name": "hello"}],
                                                              "target_channel": "nowhere-x"}).status_code == 404
        # frozen channels refuse bulk actions with 400
        c.put(f"/channels/{dst}", json={"frozen": True}).raise_for_status()
        r = c.put(f"/channels/{dst}/artifacts/bulk", json={"action": "delete", "items": [{"name": "hello"}]})
        assert r.status_code == 400 and r.json()["code"] == "channel_frozen"
        c.put(f"/channels/{dst}", json={"frozen": False}).raise_for_status()
        # search
        found = c.get("/artifacts", params={"q": "worl"}).json()
        assert any(i["name"] == "world" and i["channel"] == dst for i in found["items"])
    anon = httpx.get(f"{taipan_server.api}/artifacts", params={"q": "hello"}).json()
    assert all(i["privacy"] == "public" for i in anon["items"])


@pytest.mark.parametrize("path", ["/account", "/account/channels", "/account/tokens", "/account/scopes"])
def test_account_endpoints_need_credentials(taipan_server, path):
    r = httpx.get(taipan_server.api + path)
    assert r.status_code == 401 and r.json()["code"] == "authentication_required"
