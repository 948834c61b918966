"""Who sees what: a channel the caller may not read is answered exactly like a missing one, and a
subchannel is never more visible than its parent (in serving, the API and listings)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

import httpx
import pytest

PASSWORD = "outsider-password-1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def user_token(server, name: str) -> str:
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", PASSWORD],
                   check=True, env={"TAIPAN_HOME": str(server.home), "PATH": "/usr/bin"}, capture_output=True)
    session = server.login(name, PASSWORD)
    r = httpx.post(f"{server.api}/account/tokens", json={"name": "t"}, headers={"Authorization": f"Bearer {session}"})
    r.raise_for_status()
    return r.json()["token"]


def upload(c: httpx.Client, channel: str, path) -> httpx.Response:
    return c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())})


@pytest.fixture(scope="module")
def world(taipan_server, conda_packages):
    """A private, frozen channel with a package and a subchannel; an authenticated-only channel;
    and an outsider with a full-scope token."""
    hidden, members = unique("hidden"), unique("members")
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": hidden, "privacy": "private"}).raise_for_status()
        c.post(f"/channels/{hidden}/subchannels", json={"name": "sub"}).raise_for_status()
        upload(c, hidden, conda_packages["hello"]).raise_for_status()
        c.put(f"/channels/{hidden}", json={"frozen": True}).raise_for_status()
        c.post("/channels", json={"name": members, "privacy": "authenticated"}).raise_for_status()
        upload(c, members, conda_packages["hello"]).raise_for_status()
    outsider = user_token(taipan_server, unique("out").replace("-", "_"))
    return {"hidden": hidden, "members": members, "outsider": outsider}


def api_probes(ch: str, hello) -> list[tuple[str, str, dict]]:
    sub = f"{ch}/subchannels/sub"
    return [
        ("GET", f"/channels/{ch}", {}), ("GET", f"/channels/{sub}", {}),
        ("GET", f"/channels/{ch}/artifacts", {}), ("GET", f"/channels/{ch}/history", {}),
        ("GET", f"/channels/{ch}/subchannels", {}), ("GET", f"/channels/{sub}/artifacts", {}),
        ("GET", f"/channels/{ch}/artifacts/conda/hello/files", {}),
        ("GET", f"/channels/{ch}/artifacts/conda/nothere/files", {}),
        ("GET", f"/channels/{ch}/mirrors", {}), ("GET", f"/channels/{ch}/mirrors/m1", {}),
        ("PUT", f"/channels/{ch}", {"json": {"description": "x"}}),
        ("DELETE", f"/channels/{ch}", {}), ("DELETE", f"/channels/{sub}", {}),
        ("POST", f"/channels/{ch}/subchannels", {"json": {"name": "more"}}),
        ("POST", f"/channels/{ch}/artifacts", {"files": {"content": (hello.name, hello.read_bytes())}}),
        ("POST", f"/channels/{ch}/artifacts", {"files": {"content": ("x.whl", b"PK")}, "data": {"filetype": "wheel"}}),
        ("POST", f"/channels/{ch}/mirrors", {"json": ["not", "an", "object"]}),
        ("PUT", f"/channels/{ch}/artifacts/bulk", {"json": {"action": "delete", "items": [{"name": "hello"}]}}),
        ("PUT", f"/channels/{ch}/artifacts/bulk", {"json": {"action": "delete", "items": [{"name": "nothere"}]}}),
        ("PUT", f"/channels/{ch}/artifacts/bulk",
         {"json": {"action": "copy", "items": [{"name": "hello"}], "target_channel": "admin"}}),
        ("PUT", f"/channels/{ch}/mirrors/m1", {"json": {"mirror_name": "m2"}}),
        ("DELETE", f"/channels/{ch}/mirrors/m1", {}),
        ("POST", f"/channels/{ch}/mirrors/m1/stop_mirror_sync", {}),
    ]


def answer(r: httpx.Response, ch: str) -> tuple[int, str, str | None]:
    return r.status_code, r.text.replace(ch, "<CH>"), r.headers.get("www-authenticate")


@pytest.mark.parametrize("who", ["anonymous", "outsider"])
def test_a_hidden_channel_answers_exactly_like_a_missing_one(taipan_server, world, conda_packages, who):
    hidden, missing = world["hidden"], unique("missing")
    headers = {"X-Auth": world["outsider"]} if who == "outsider" else {}
    with httpx.Client(base_url=taipan_server.api, headers=headers) as c:
        for (method, path, kw), (_, twin, _) in zip(api_probes(hidden, conda_packages["hello"]),
                                                    api_probes(missing, conda_packages["hello"]), strict=True):
            a, b = c.request(method, path, **kw), c.request(method, twin.replace(missing, missing), **kw)
            assert answer(a, hidden) == answer(b, missing), (method, path, a.text, b.text)
            if method == "GET":
                assert a.status_code == 404 and a.json()["code"] == "channel_not_found", (path, a.text)
            else:  # writes: 401 for anonymous callers (nothing about the channel), else 404
                assert a.status_code == (401 if who == "anonymous" else 404), (method, path, a.text)
        # package serving: 401 + WWW-Authenticate for anonymous (clients need it to send
        # credentials), 404 for a user; identical for a missing channel
        expected = 401 if who == "anonymous" else 404
        for path in ("noarch/repodata.json", "noarch/hello-1.0-0.conda", "channeldata.json", "",
                     "sub/noarch/repodata.json", "noarch/hello-1.0-0.conda?sbom=download"):
            a, b = (c.get(f"/repo/{ch}/{path}") for ch in (hidden, missing))
            assert answer(a, hidden) == answer(b, missing), (path, a.text, b.text)
            assert a.status_code == expected, (path, a.text)
            if who == "anonymous":
                assert a.headers["www-authenticate"].startswith("Basic")
        # and the channel appears in no listing or search
        listed = [x["name"] for x in c.get("/channels").json()["items"]]
        found = {x["channel"] for x in c.get("/artifacts", params={"q": "hello", "limit": 1000}).json()["items"]}
        assert hidden not in listed and hidden not in found


def test_visible_channels_still_say_forbidden_when_a_right_is_missing(taipan_server, world, conda_packages):
    members, outsider = world["members"], world["outsider"]
    with httpx.Client(base_url=taipan_server.api, headers={"X-Auth": outsider}) as c:
        assert c.get(f"/channels/{members}").status_code == 200
        r = c.put(f"/channels/{members}", json={"description": "mine now"})
        assert r.status_code == 403 and r.json()["code"] == "channel_forbidden"
        r = upload(c, members, conda_packages["hello-1.1"])
        assert r.status_code == 403 and r.json()["code"] == "channel_forbidden"
        assert c.get(f"/repo/{members}/noarch/repodata.json").status_code == 200
    session = taipan_server.login()
    narrow = httpx.post(f"{taipan_server.api}/account/tokens", json={"name": "narrow", "scopes": ["channel:view"]},
                        headers={"Authorization": f"Bearer {session}"}).json()["token"]
    r = httpx.get(f"{taipan_server.api}/repo/t/{narrow}/{members}/noarch/repodata.json")
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    r = httpx.get(f"{taipan_server.api}/channels/{members}/artifacts", headers={"X-Auth": narrow})
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"


def test_a_subchannel_is_never_more_visible_than_its_parent(taipan_server, world, conda_packages):
    parent = unique("parent")
    outsider = world["outsider"]
    admin = taipan_server.client(taipan_server.admin_token())
    admin.post("/channels", json={"name": parent}).raise_for_status()
    admin.post(f"/channels/{parent}/subchannels", json={"name": "pub", "privacy": "public"}).raise_for_status()
    upload(admin, f"{parent}/pub", conda_packages["hello"]).raise_for_status()
    repo = f"{taipan_server.api}/repo/{parent}/pub/noarch/repodata.json"
    assert httpx.get(repo).status_code == 200
    anon = httpx.Client(base_url=taipan_server.api)
    out = httpx.Client(base_url=taipan_server.api, headers={"X-Auth": outsider})

    def sees(c: httpx.Client) -> dict[str, bool]:
        found = {x["channel_path"] for x in c.get("/artifacts", params={"q": "hello", "limit": 1000}).json()["items"]}
        return {
            "serving": c.get(f"/repo/{parent}/pub/noarch/repodata.json").status_code == 200,
            "package": c.get(f"/repo/{parent}/pub/noarch/hello-1.0-0.conda").status_code == 200,
            "show": c.get(f"/channels/{parent}/subchannels/pub").status_code == 200,
            "artifacts": c.get(f"/channels/{parent}/subchannels/pub/artifacts").status_code == 200,
            "search": f"{parent}/pub" in found,
        }

    admin.put(f"/channels/{parent}", json={"privacy": "private"}).raise_for_status()
    time.sleep(1.1)  # other server processes' channel caches live a second
    assert not any(sees(anon).values()), sees(anon)
    assert not any(sees(out).values()), sees(out)
    assert all(sees(admin).values())
    sub = admin.get(f"/channels/{parent}/subchannels/pub").json()
    assert sub["privacy"] == "public" and sub["effective_privacy"] == "private"
    assert httpx.get(repo).status_code == 401

    admin.put(f"/channels/{parent}", json={"privacy": "authenticated"}).raise_for_status()
    time.sleep(1.1)
    assert not any(sees(anon).values()), sees(anon)
    assert all(sees(out).values()), sees(out)
    r = out.get(f"/repo/{parent}/pub/noarch/repodata.json")
    assert r.headers["cache-control"].startswith("private")  # never cached publicly

    admin.put(f"/channels/{parent}", json={"privacy": "public"}).raise_for_status()
    time.sleep(1.1)
    assert all(sees(anon).values()), sees(anon)
    for c in (admin, anon, out):
        c.close()


def test_sbom_download_is_the_sbom_and_never_the_package(taipan_server, conda_packages):
    import sqlite3

    name = unique("sbom")
    hello = conda_packages["hello"]
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        c.post(f"/channels/{name}/subchannels", json={"name": "sub"}).raise_for_status()
        for ch in (name, f"{name}/sub"):
            upload(c, ch, hello).raise_for_status()
    for ch in (name, f"{name}/sub"):
        url = f"{taipan_server.api}/repo/{ch}/noarch/{hello.name}"
        for params in ({"sbom": "download"}, {"sbom": ""}):
            r = httpx.get(url, params=params)
            assert r.status_code == 200, r.status_code
            assert r.json()["spdxVersion"] == "SPDX-2.3" and hello.read_bytes()[:4] not in r.content
        r = httpx.get(url.replace("hello-1.0", "nothing-1.0"), params={"sbom": "download"})
        body = r.json()
        assert r.status_code == 404 and body == {**body, "code": "sbom_not_found",
                                                 "message": "No SBOM for noarch/nothing-1.0-0.conda available"}
        assert httpx.head(url, params={"sbom": "download"}).status_code == 200
    # only the real download below is recorded
    assert httpx.get(f"{taipan_server.api}/repo/{name}/noarch/{hello.name}").content == hello.read_bytes()
    deadline = time.monotonic() + 20
    rows: list = []
    while time.monotonic() < deadline:
        with sqlite3.connect(taipan_server.home / "taipan.db") as db:
            rows = db.execute("SELECT channel_path FROM downloads WHERE channel_path IN (?, ?)",
                              (name, f"{name}/sub")).fetchall()
        if rows:
            break
        time.sleep(0.2)
    time.sleep(1.5)  # a wrongly recorded SBOM request would have been flushed in the same batch or earlier
    with sqlite3.connect(taipan_server.home / "taipan.db") as db:
        rows = db.execute("SELECT channel_path FROM downloads WHERE channel_path IN (?, ?)",
                          (name, f"{name}/sub")).fetchall()
    assert rows == [(name,)]
