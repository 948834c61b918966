"""The web UI against a real server: forms, cookies, CSRF, uploads, tokens and access rules, over HTTP."""

from __future__ import annotations

import hashlib
import html
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

PASSWORD = "ui-user-password-1"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def create_user(server) -> str:
    name = f"ui{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", PASSWORD],
                   check=True, env={**os.environ, "TAIPAN_HOME": str(server.home)}, capture_output=True)
    return name


@pytest.fixture(scope="module")
def ui_user(taipan_server) -> str:
    """A user of its own, so that failed logins here never throttle the admin other tests use."""
    return create_user(taipan_server)


def browser(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, follow_redirects=False, timeout=30)


def csrf(page: httpx.Response) -> str:
    match = CSRF_RE.search(page.text)
    assert match, page.text[:500]
    return html.unescape(match.group(1))


def log_in(client: httpx.Client, username: str, password: str = PASSWORD) -> httpx.Response:
    form = client.get("/ui/login")
    assert form.status_code == 200
    return client.post("/ui/login", data={"username": username, "password": password, "csrf": csrf(form),
                                          "next": "/ui/channels"})


@pytest.fixture
def user_browser(taipan_server, ui_user) -> Iterator[httpx.Client]:
    with browser(taipan_server) as client:
        r = log_in(client, ui_user)
        assert r.status_code == 303, r.text
        yield client


def post_form(client: httpx.Client, page_url: str, action: str, data: dict | None = None,
              files: dict | None = None) -> httpx.Response:
    token = csrf(client.get(page_url))
    return client.post(action, data={**(data or {}), "csrf": token}, files=files)


def new_channel(client: httpx.Client, privacy: str = "public", description: str = "") -> str:
    name = f"uich-{uuid.uuid4().hex[:8]}"
    r = post_form(client, "/ui/channels", "/ui/channels",
                  {"name": name, "privacy": privacy, "description": description})
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/ui/channels/{name}"
    return name


def wait_for_repodata(server, path: str, subdir: str, key: str, filename: str) -> dict:
    deadline = time.monotonic() + 15
    while True:
        r = httpx.get(f"{server.api}/repo/{path}/{subdir}/repodata.json", timeout=10)
        if r.status_code == 200 and filename in r.json().get(key, {}):
            return r.json()
        assert time.monotonic() < deadline, f"{filename} never reached {path}/{subdir}: {r.status_code}"
        time.sleep(0.1)


def test_front_door_and_login_cookie(taipan_server, ui_user):
    with browser(taipan_server) as client:
        r = client.get("/")
        assert r.status_code in (302, 307) and r.headers["location"] == "/ui/channels"
        r = log_in(client, ui_user)
        assert r.status_code == 303 and r.headers["location"] == "/ui/channels"
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("taipan_session="))
        attrs = cookie.lower()
        assert "httponly" in attrs and "samesite=lax" in attrs and "secure" not in attrs
        page = client.get("/ui/channels")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert f"Logged in as <strong>{ui_user}</strong>" in page.text
        assert "Logged in as" in page.text and 'role="status"' in page.text  # the one-time notice
        assert "no-store" in page.headers["cache-control"]


def test_wrong_password_shows_error_and_sets_no_cookie(taipan_server, ui_user):
    with browser(taipan_server) as client:
        r = log_in(client, ui_user, "not-the-password")
        assert r.status_code == 401
        assert "Invalid username or password" in r.text and "Check both and try again" in r.text
        assert 'role="alert"' in r.text and f'value="{ui_user}"' in r.text
        assert not any(c.startswith("taipan_session=") for c in r.headers.get_list("set-cookie"))
        assert "Log in" in client.get("/ui/channels").text


def test_repeated_failures_show_the_throttle_message(taipan_server):
    name = create_user(taipan_server)
    with browser(taipan_server) as client:
        for _ in range(3):  # the free failures (settings.auth.free_login_failures)
            assert log_in(client, name, "wrong-password").status_code == 401
        r = log_in(client, name, PASSWORD)
        assert r.status_code == 429 and f"Too many failed logins for &#39;{name}&#39;" in r.text
        assert "Wait 1 second before trying again" in r.text and r.headers["retry-after"] == "1"


def test_channel_upload_package_and_privacy(taipan_server, user_browser, conda_packages):
    client = user_browser
    name = new_channel(client, description="<script>alert(1)</script>")
    page = client.get(f"/ui/channels/{name}")
    assert page.status_code == 200 and f"Channel {name} created" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
    assert f"conda install -c {taipan_server.url}/api/repo/{name} &lt;package&gt;" in page.text

    hello = conda_packages["hello"]
    r = post_form(client, f"/ui/channels/{name}", f"/ui/channels/{name}/upload",
                  files={"content": (hello.name, hello.read_bytes(), "application/octet-stream")})
    assert r.status_code == 303, r.text
    wait_for_repodata(taipan_server, name, "noarch", "packages.conda", hello.name)
    page = client.get(f"/ui/channels/{name}")
    assert f'href="/ui/channels/{name}/packages/hello"' in page.text and "artifact uploaded" in page.text

    pkg = client.get(f"/ui/channels/{name}/packages/hello")
    assert pkg.status_code == 200
    assert hashlib.sha256(hello.read_bytes()).hexdigest() in pkg.text
    assert f'href="/api/repo/{name}/noarch/{hello.name}"' in pkg.text
    assert httpx.get(f"{taipan_server.url}/api/repo/{name}/noarch/{hello.name}").status_code == 200

    # A subchannel through its form, and a .tar.bz2 upload into it.
    r = post_form(client, f"/ui/channels/{name}", f"/ui/channels/{name}/subchannels",
                  {"name": "dev", "privacy": "public"})
    assert r.status_code == 303 and r.headers["location"] == f"/ui/channels/{name}/dev"
    world = conda_packages["world"]
    r = post_form(client, f"/ui/channels/{name}/dev", f"/ui/channels/{name}/dev/upload",
                  files={"content": (world.name, world.read_bytes(), "application/octet-stream")})
    assert r.status_code == 303, r.text
    wait_for_repodata(taipan_server, f"{name}/dev", "linux-64", "packages", world.name)
    assert world.name in client.get(f"/ui/channels/{name}/dev/packages/world").text

    r = post_form(client, f"/ui/channels/{name}", f"/ui/channels/{name}/settings",
                  {"privacy": "private", "description": "now private"})
    assert r.status_code == 303
    page = client.get(f"/ui/channels/{name}")
    assert "Saved: description, privacy" in page.text and '<option value="private" selected>' in page.text
    assert "channel updated" in page.text

    with browser(taipan_server) as anon:
        for url in (f"/ui/channels/{name}", f"/ui/channels/{name}/packages/hello"):
            r = anon.get(url)  # hidden like a missing channel, with a way to log in
            assert r.status_code == 404 and 'name="password"' in r.text
            assert hello.name not in r.text and "now private" not in r.text
        assert f"/ui/channels/{name}" not in anon.get("/ui/channels").text


def test_duplicate_upload_and_bad_file_show_errors(taipan_server, user_browser, conda_packages, tmp_path: Path):
    client = user_browser
    name = new_channel(client)
    hello = conda_packages["hello"]
    url = f"/ui/channels/{name}"
    files = {"content": (hello.name, hello.read_bytes(), "application/octet-stream")}
    assert post_form(client, url, url + "/upload", files=files).status_code == 303
    r = post_form(client, url, url + "/upload", files=files)
    assert r.status_code == 409 and "already exists" in r.text and 'role="alert"' in r.text
    r = post_form(client, url, url + "/upload",
                  files={"content": ("junk-1.0-0.conda", b"not a package", "application/octet-stream")})
    assert r.status_code == 400 and "is not a conda package archive" in r.text
    r = post_form(client, "/ui/channels", "/ui/channels", {"name": "Bad Name!"})
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    assert client.get("/ui/channels/no-such-channel").status_code == 404
    assert client.get("/ui/no/such/page").status_code == 404


def test_tokens_create_use_and_revoke(taipan_server, user_browser, ui_user):
    client = user_browser
    r = post_form(client, "/ui/tokens", "/ui/tokens",
                  {"name": "ui-test", "scopes": ["channel:view", "artifact:view"]})
    assert r.status_code == 201, r.text
    secret = re.search(r'id="new-secret" value="([^"]+)"', r.text).group(1)
    assert "channel:view, artifact:view" in r.text or "artifact:view, channel:view" in r.text
    api = httpx.get(f"{taipan_server.api}/account", headers={"X-Auth": secret})
    assert api.status_code == 200 and api.json()["username"] == ui_user

    page = client.get("/ui/tokens")
    assert secret not in page.text  # shown once only
    token_id = re.search(r'action="/ui/tokens/([^"/]+)/revoke"', page.text).group(1)
    r = client.post(f"/ui/tokens/{token_id}/revoke", data={"csrf": csrf(page)})
    assert r.status_code == 303 and r.headers["location"] == "/ui/tokens"
    assert "Token revoked" in client.get("/ui/tokens").text
    assert httpx.get(f"{taipan_server.api}/account", headers={"X-Auth": secret}).status_code == 401


def test_posts_without_the_right_csrf_token_change_nothing(taipan_server, user_browser):
    client = user_browser
    name = f"uich-{uuid.uuid4().hex[:8]}"
    for token in (None, "forged"):
        data = {"name": name, "privacy": "public", **({"csrf": token} if token else {})}
        r = client.post("/ui/channels", data=data)
        assert r.status_code == 403 and "could not be verified" in r.text
    with taipan_server.client(taipan_server.admin_token()) as api:
        assert api.get(f"/channels/{name}").status_code == 404
    with browser(taipan_server) as anon:  # the login form needs its token too
        r = anon.post("/ui/login", data={"username": "admin", "password": "whatever"})
        assert r.status_code == 403


def test_anonymous_cannot_see_private_channel(taipan_server, ui_user):
    # The user's personal channel is created private.
    with browser(taipan_server) as anon:
        # hidden exactly like a channel that does not exist
        assert anon.get(f"/ui/channels/{ui_user}").status_code == 404
        assert anon.get(f"/ui/channels/{ui_user}/packages/hello").status_code == 404
        assert anon.get("/ui/channels/no-such-channel-here").status_code == 404
        assert f'href="/ui/channels/{ui_user}"' not in anon.get("/ui/channels").text
        assert anon.get("/ui/tokens").status_code == 401


def test_logout_ends_the_session_on_the_server(taipan_server, ui_user):
    with browser(taipan_server) as client:
        log_in(client, ui_user)
        secret = client.cookies.get("taipan_session")
        assert secret and httpx.get(f"{taipan_server.api}/account", headers={"X-Auth": secret}).status_code == 200
        r = post_form(client, "/ui/channels", "/ui/logout")
        assert r.status_code == 303 and r.headers["location"] == "/ui/login"
        assert any(c.startswith("taipan_session=") and "max-age=0" in c.lower()
                   for c in r.headers.get_list("set-cookie"))
        assert httpx.get(f"{taipan_server.api}/account", headers={"X-Auth": secret}).status_code == 401
    with browser(taipan_server) as replay:  # a copied cookie is dead too, and gets cleared
        replay.cookies.set("taipan_session", secret, path="/ui")
        r = replay.get("/ui/tokens")
        assert r.status_code == 401 and "Log in to continue" in r.text


def test_pages_render_in_headless_chromium(taipan_server, tmp_path: Path):
    if not Path("/usr/bin/chromium").exists():
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail("/usr/bin/chromium is missing: .ci/run installs Debian's chromium (apt-get install chromium)")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium); CI installs it")
    out = subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu",
                          f"--user-data-dir={tmp_path}", "--dump-dom", f"{taipan_server.url}/"],
                         capture_output=True, text=True, timeout=60)
    assert "<h1>Channels</h1>" in out.stdout, out.stderr[-2000:]
