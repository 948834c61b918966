"""Upstream credentials are stored apart from the URL, encrypted, and never echoed: not in the mirror
JSON, the channel history, the errors, the server log or the database file; readers who are not
admins see only the category of an upstream error."""

from __future__ import annotations

import stat

import httpx

from conftest import api, unique, wait_state


def _everything_shown(server, channel: str) -> str:
    """Every place a secret could leak to: API answers (admin and anonymous), history, the log."""
    texts = []
    with api(server) as c:
        texts.append(c.get(f"/channels/{channel}/mirrors").text)
        texts.append(c.get("/mirrors").text)
        texts.append(c.get(f"/channels/{channel}/history").text)
    with server.client() as anon:
        texts.append(anon.get(f"/channels/{channel}/mirrors").text)
        texts.append(anon.get("/mirrors").text)
    texts.append(server.log.read_text(errors="replace"))
    return "\n".join(texts)


def test_credentials_are_sealed_and_never_echoed(cli, mirror_server, upstream) -> None:
    # A private Taipan channel is the upstream: it needs a token, given in the URL in three ways.
    private = unique("priv")
    cli.run("channel", "--create", private)
    with api(mirror_server) as c:
        assert c.put(f"/channels/{private}", json={"privacy": "private"}).status_code == 200
    cli.run("mirror", "--create", "up", "--channel", private, "--source", upstream.url, "--mode", "active",
            "--run_now", "--only_spec", "zlib")
    wait_state(mirror_server, private, "up")
    r = httpx.post(f"{mirror_server.api}/account/tokens", json={"name": unique("up")},
                   headers={"X-Auth": mirror_server.admin_token()})
    token = r.json()["token"]
    host = mirror_server.url.split("://", 1)[1]

    channel = unique("pub")  # a public channel: anonymous users read its mirrors
    cli.run("channel", "--create", channel)
    with api(mirror_server) as c:
        c.put(f"/channels/{channel}", json={"privacy": "public"})
        r = c.post(f"/channels/{channel}/mirrors", json={
            "mirror_name": "basic", "source_root": f"http://__token__:{token}@{host}/api/repo/{private}",
            "filters": {"subdirs": ["linux-64"]}, "run_now": True})
        assert r.status_code == 201, r.text
        shown = r.json()
        assert token not in r.text and shown["source_root"] == f"http://***:***@{host}/api/repo/{private}"
        assert shown["source_has_credentials"] is True
        # a token as user name, and in the query: masked the same way (created, not run)
        r = c.post(f"/channels/{channel}/mirrors", json={
            "mirror_name": "user", "source_root": f"http://{token}@{host}/api/repo/{private}?token={token}"})
        assert r.status_code == 201 and token not in r.text, r.text
        assert r.json()["source_root"] == f"http://***@{host}/api/repo/{private}?token=***"
        # a failing run with a wrong password: its error names no credentials
        r = c.post(f"/channels/{channel}/mirrors", json={
            "mirror_name": "wrong", "source_root": f"http://someone:wrong-pass-x1y2@{host}/api/repo/{private}",
            "filters": {"subdirs": ["linux-64"]}, "run_now": True})
        assert r.status_code == 201, r.text
    m = wait_state(mirror_server, channel, "basic")
    assert m["sync_state"]["count"]["passive"] == 2
    failed = wait_state(mirror_server, channel, "wrong", ("failed",))
    assert "HTTP 401" in failed["sync_state"]["last_exception"]  # the admin sees the upstream's answer

    # the passive files come through the stored credentials
    with httpx.Client() as c:
        r = c.get(f"{mirror_server.api}/repo/{channel}/linux-64/zlib-1.3.1-h0_0.conda")
        assert r.status_code == 200 and r.content[:2] == b"PK"

    # anonymous readers: the category only
    with mirror_server.client() as anon:
        seen = {x["mirror_name"]: x for x in anon.get(f"/channels/{channel}/mirrors").json()["items"]}
    assert seen["wrong"]["sync_state"]["last_exception"] == "HTTP 401"
    assert "someone" not in str(seen)

    everything = _everything_shown(mirror_server, channel)
    for secret in (token, "wrong-pass-x1y2"):
        assert secret not in everything
    # encrypted at rest: the database file holds no secret in the clear; the key file is 0600
    db_bytes = (mirror_server.home / "taipan.db").read_bytes()
    for secret in (token, "wrong-pass-x1y2"):
        assert secret.encode() not in db_bytes
    key = mirror_server.home / "secret.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    # an update that sends the masked URL back keeps the credentials
    with api(mirror_server) as c:
        r = c.put(f"/channels/{channel}/mirrors/basic", json={
            "source_root": f"http://***:***@{host}/api/repo/{private}", "run_now": True})
        assert r.status_code == 202, r.text
    m = wait_state(mirror_server, channel, "basic", pred=lambda m: m["sync_state"].get("finished_at"))
    assert m["sync_state"]["last_exception"] is None


def test_non_admins_see_only_the_category_of_upstream_errors(mirror_server) -> None:
    channel = unique("cat")
    with api(mirror_server) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        c.put(f"/channels/{channel}", json={"privacy": "public"})
        r = c.post(f"/channels/{channel}/mirrors", json={
            "mirror_name": "gone", "source_root": "http://127.0.0.1:9/internal-service",
            "filters": {"subdirs": ["noarch"]}, "run_now": True})
        assert r.status_code == 201, r.text
    m = wait_state(mirror_server, channel, "gone", ("failed",))
    assert "127.0.0.1:9" in m["sync_state"]["last_exception"]  # admins: the whole story
    with mirror_server.client() as anon:
        r = anon.get(f"/channels/{channel}/mirrors/gone")
        assert r.status_code == 200
        assert r.json()["sync_state"]["last_exception"] == "upstream unreachable"
        assert "127.0.0.1:9" not in r.json()["sync_state"]["last_exception"]
