"""Bad input gets clear errors: JSON {code, message, hint} with 400/404/409 from the API, and one
readable line with a hint from the CLI."""

from __future__ import annotations

import os
import socket
import uuid

import httpx
import pytest

from conftest import api, unique, wait_state


@pytest.fixture
def channel(mirror_server) -> str:
    name = unique("bad")
    with api(mirror_server) as c:
        assert c.post("/channels", json={"name": name}).status_code == 201
    return name


def body(**kw):
    out = {"mirror_name": unique("m"), "source_root": "https://conda.example.invalid/x"}
    out.update(kw)
    return out


@pytest.mark.parametrize(("extra", "status", "code"), [
    ({"mirror_type": "svn"}, 400, "invalid_mirror_type"),
    ({"mirror_type": "CRAN", "filters": {"only_specs": ["ggplot2 >>= 3"]}}, 400, "invalid_spec"),
    ({"mirror_mode": "eager"}, 400, "invalid_mirror_mode"),
    ({"cron": "61 * * * *"}, 400, "invalid_cron"),
    ({"cron": "every night"}, 400, "invalid_cron"),
    ({"filters": {"date_from": "2023-01-01", "date_to": "2024-06-01"}}, 400, "invalid_date"),
    ({"filters": {"date_from": "2023-01-01"}}, 400, "invalid_date"),
    ({"filters": {"include_licenses": ["beerware"]}}, 400, "invalid_license"),
    ({"filters": {"only_specs": ["numpy >>1"]}}, 400, "invalid_matchspec"),
    ({"filters": {"only_specs": ["a"], "exclude_specs": ["b"]}}, 400, "invalid_filters"),
    ({"filters": {"subdirs": ["linux-65"]}}, 400, "unknown_subdir"),
    ({"source_root": "ftp://x/y"}, 400, "invalid_source"),
    ({"proxy": "socks"}, 400, "invalid_proxy"),
    ({"mirror_name": "bad name!"}, 400, "invalid_mirror_name"),
])
def test_api_rejects_bad_mirrors(mirror_server, channel, extra, status, code) -> None:
    with api(mirror_server) as c:
        r = c.post(f"/channels/{channel}/mirrors", json=body(**extra))
    assert r.status_code == status, r.text
    err = r.json()
    assert err["code"] == code and err["message"] and err["hint"]


def test_api_not_found_and_conflict(mirror_server, channel) -> None:
    with api(mirror_server) as c:
        assert c.post(f"/channels/{channel}/mirrors", json=body(mirror_name="dup")).status_code == 201
        r = c.post(f"/channels/{channel}/mirrors", json=body(mirror_name="dup"))
        assert r.status_code == 409 and r.json()["code"] == "mirror_exists"
        r = c.get(f"/channels/{channel}/mirrors/nope")
        assert r.status_code == 404 and r.json()["code"] == "mirror_not_found"
        r = c.post("/channels/no-such-channel/mirrors", json=body())
        assert r.status_code == 404 and r.json()["code"] == "channel_not_found"
        r = c.post(f"/channels/{channel}/mirrors/dup/stop_mirror_sync")
        assert r.status_code == 409 or r.json()["state"] == "stopped"  # pending mirrors can be stopped
        r = c.post(f"/channels/{channel}/mirrors", json=[1, 2])
        assert r.status_code == 400
        assert c.delete(f"/channels/{channel}/mirrors/dup").status_code == 204
        assert c.delete(f"/channels/{channel}/mirrors/dup").status_code == 404
    # without credentials: 401, never a 500
    with mirror_server.client() as anon:
        r = anon.post(f"/channels/{channel}/mirrors", json=body())
        assert r.status_code == 401 and r.json()["code"]


def test_cli_errors_are_readable(cli, channel) -> None:
    out = cli.run("mirror", "--create", "x", "--channel", channel, "--source", "http://h/x", "--type", "svn", rc=None)
    assert out.returncode == 2 and "invalid choice" in out.stderr
    for args, text in [
        (["--cron", "* * *"], "Invalid cron expression"),
        (["--date_from", "2020-01-01", "--date_to", "2022-01-01"], "more than one year"),
        (["--licenses", "mit,wtfpl"], "Unknown license family 'wtfpl'"),
        (["--only_spec", "numpy >>1"], "Invalid MatchSpec 'numpy >>1'"),
        (["--only_spec", "a", "--exclude_spec", "b"], "cannot be combined"),
    ]:
        out = cli.run("mirror", "--create", unique("x"), "--channel", channel, "--source", "http://h/x", *args,
                      rc=None)
        assert out.returncode != 0, out
        assert text in out.stderr and "hint:" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    out = cli.run("mirror", "--show", "nothing-here", "--channel", channel, rc=None)
    assert out.returncode == 4 and "No mirror named 'nothing-here'" in out.stderr


def test_unreachable_source_fails_the_run_not_the_server(cli, mirror_server, channel) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # --run_now waits for the first contact with the upstream, and says that it failed
    out = cli.run("mirror", "--create", "gone", "--channel", channel, "--source",
                  f"http://127.0.0.1:{port}/ch", "--subdirs", "noarch", "--run_now", rc=None)
    assert out.returncode != 0, out
    assert "Mirror gone failed" in out.stderr and "unreachable" in out.stderr, out.stderr
    assert "kept" in out.stderr and "Traceback" not in out.stderr
    m = wait_state(mirror_server, channel, "gone", ("failed",), timeout=30)  # the mirror stays, failed
    assert "unreachable" in m["sync_state"]["last_exception"]
    shown = cli.run("mirror", "--show", "gone", "--channel", channel).stdout
    assert "state: failed" in shown and "unreachable" in shown
    with api(mirror_server) as c:
        assert c.get("/system/version").status_code == 200


def test_only_admins_manage_mirrors(mirror_server) -> None:
    """A mirror makes the server fetch arbitrary URLs: channel owners who are not admins may not."""
    import subprocess
    import sys

    username = f"owner_{uuid.uuid4().hex[:6]}"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", username, "--password",
                    "owner-password-1"], check=True, capture_output=True,
                   env={**os.environ, "TAIPAN_HOME": str(mirror_server.home)})
    session = httpx.post(f"{mirror_server.api}/auth/login",
                         json={"username": username, "password": "owner-password-1"}).json()["token"]
    headers = {"Authorization": f"Bearer {session}"}
    r = httpx.post(f"{mirror_server.api}/channels/{username}/mirrors", headers=headers, json={
        "mirror_name": "internal", "source_root": "http://127.0.0.1:9/conda", "mirror_mode": "passive"})
    assert r.status_code == 403 and r.json()["code"] == "admin_required", r.text
    assert httpx.get(f"{mirror_server.api}/channels/{username}/mirrors", headers=headers).json()["items"] == []
