"""Tokens and credentials through the HTTP API of a real server: who may manage tokens, refreshes that
log nobody out, revocation and expiry that bite at once (in every worker), logout, scopes by role,
whoami permissions, and password checks that are throttled and do not reveal which users exist."""

from __future__ import annotations

import base64
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

PASSWORD = "user-password-1"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_user(server, name: str | None = None, password: str = PASSWORD) -> str:  # type: ignore[no-untyped-def]
    name = name or f"u{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", password],
                   check=True, env={**os.environ, "TAIPAN_HOME": str(server.home)}, capture_output=True)
    return name


def bearer(session: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {session}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def new_token(server, headers: dict[str, str], scopes: list[str] | None = None,  # type: ignore[no-untyped-def]
              expires_at: str | None = None, name: str | None = None) -> tuple[str, str]:
    body: dict[str, object] = {"name": name or unique("t")}
    if scopes is not None:
        body["scopes"] = scopes
    if expires_at is not None:
        body["expires_at"] = expires_at
    r = httpx.post(f"{server.api}/account/tokens", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["token"], r.json()["id"]


def status(method: str, url: str, **kw: object) -> int:
    return httpx.request(method, url, timeout=30, **kw).status_code  # type: ignore[arg-type]


@contextmanager
def private_channel(server, conda_packages) -> Iterator[str]:  # type: ignore[no-untyped-def]
    name = unique("auth")
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        c.put(f"/channels/{name}", json={"privacy": "private"}).raise_for_status()
        p = conda_packages["hello"]
        c.post(f"/channels/{name}/artifacts", files={"content": (p.name, p.read_bytes())},
               data={"filetype": "conda1"}).raise_for_status()
    yield name


def credential_forms(server, channel: str, token: str) -> dict[str, tuple[str, str, dict]]:  # type: ignore[no-untyped-def]
    """Every way a client presents a token, on package serving and on a REST write."""
    repo = f"{server.api}/repo"
    index = f"{channel}/noarch/repodata.json"
    return {
        "t-url": ("GET", f"{repo}/t/{token}/{index}", {}),
        "t-after-host": ("GET", f"{server.url}/t/{token}/api/repo/{index}", {}),
        "x-auth-repo": ("GET", f"{repo}/{index}", {"headers": {"X-Auth": token}}),
        "bearer-repo": ("GET", f"{repo}/{index}", {"headers": bearer(token)}),
        "basic-repo": ("GET", f"{repo}/{index}", {"headers": basic("anyone", token)}),
        "basic-package": ("GET", f"{repo}/{channel}/noarch/hello-1.0-0.conda", {"headers": basic("x", token)}),
        "pip-style-basic": ("GET", f"{repo}/{index}", {"headers": basic(token, "x-auth-token")}),
        "basic-rest-write": ("PUT", f"{server.api}/channels/{channel}",
                             {"headers": basic("anyone", token), "json": {"description": "touched"}}),
    }


def statuses(forms: dict[str, tuple[str, str, dict]]) -> dict[str, int]:  # type: ignore[type-arg]
    return {name: status(method, url, **kw) for name, (method, url, kw) in forms.items()}


# ---------------------------------------------------------------- issue 8 item 1: token management

def test_token_management_needs_a_session_or_token_manage(taipan_server) -> None:  # type: ignore[no-untyped-def]
    api = taipan_server.api
    session = bearer(taipan_server.login())
    full, full_id = new_token(taipan_server, session)
    narrow, narrow_id = new_token(taipan_server, session, ["artifact:download"])
    repo, _ = new_token(taipan_server, session, ["repo"])
    manager, manager_id = new_token(taipan_server, session, ["artifact:download", "token:manage"])
    # A download token can neither see, refresh, delete nor mint tokens; "repo" does not imply it.
    for token in (narrow, repo):
        h = {"X-Auth": token}
        assert status("GET", f"{api}/account/tokens", headers=h) == 403
        assert status("PUT", f"{api}/account/tokens/{full_id}", headers=h, json={}) == 403
        assert status("DELETE", f"{api}/account/tokens/{full_id}", headers=h) == 403
        r = httpx.post(f"{api}/account/tokens", headers=h, json={"name": "mine", "scopes": ["artifact:download"]})
        assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    # token:manage: manage, but never more than it holds.
    h = {"X-Auth": manager}
    listed = httpx.get(f"{api}/account/tokens", headers=h).json()["items"]
    assert {full_id, narrow_id} <= {t["id"] for t in listed} and all("token" not in t for t in listed)
    assert status("POST", f"{api}/account/tokens", headers=h, json={"name": "dl", "scopes": ["artifact:download"]}) \
        == 200
    assert status("POST", f"{api}/account/tokens", headers=h, json={"name": "up", "scopes": ["artifact:create"]}) \
        == 403
    r = httpx.put(f"{api}/account/tokens/{full_id}", headers=h, json={})
    assert r.status_code == 403 and "token" not in r.json()  # never the secret of a broader token
    assert httpx.get(f"{api}/account", headers={"X-Auth": full}).status_code == 200  # untouched
    assert status("PUT", f"{api}/account/tokens/{narrow_id}", headers=h, json={}) == 200
    # ... nor a token that outlives it, nor a longer life for itself.
    before = next(t for t in listed if t["id"] == manager_id)["expires_at"]
    far = (dt.datetime.now(dt.UTC) + dt.timedelta(days=300)).isoformat()
    assert status("POST", f"{api}/account/tokens", headers=h, json={"name": "long", "expires_at": far,
                                                                    "scopes": ["artifact:download"]}) == 403
    assert httpx.put(f"{api}/account/tokens/{manager_id}", headers=h, json={}).json()["expires_at"] == before
    # The conda-repo-cli sign-in flow: session -> list -> refresh.
    assert status("PUT", f"{api}/account/tokens/{full_id}", headers=session, json={}) == 200


# ---------------------------------------------------------------- issue 7 item 5: refresh

def test_refresh_keeps_every_client_signed_in_and_delete_revokes_all(taipan_server, conda_packages) -> None:  # type: ignore[no-untyped-def]
    api = taipan_server.api
    name = f"repo-cli-token-{unique('host')}"
    first, second = bearer(taipan_server.login()), bearer(taipan_server.login())  # two CLIs, one machine
    lifetime = dt.timedelta(seconds=60)
    secret1, token_id = new_token(taipan_server, first, name=name,
                                  expires_at=(dt.datetime.now(dt.UTC) + lifetime).isoformat())
    expires = [t for t in httpx.get(f"{api}/account/tokens", headers=first).json()["items"]
               if t["id"] == token_id][0]["expires_at"]
    time.sleep(1.1)
    found = [t for t in httpx.get(f"{api}/account/tokens", headers=second).json()["items"] if t["name"] == name]
    r = httpx.put(f"{api}/account/tokens/{found[0]['id']}", headers=second, json={})
    secret2 = r.json()["token"]
    # A refresh renews the token's lifetime from now, so a client that refreshes never runs out.
    renewed = dt.datetime.fromisoformat(r.json()["expires_at"]) - dt.datetime.fromisoformat(expires)
    assert dt.timedelta(seconds=1) <= renewed < lifetime
    secret3 = httpx.put(f"{api}/account/tokens/{token_id}", headers=first, json={}).json()["token"]
    assert len({secret1, secret2, secret3}) == 3
    with private_channel(taipan_server, conda_packages) as channel:
        for secret in (secret1, secret2, secret3):
            assert status("GET", f"{api}/account", headers={"X-Auth": secret}) == 200
            assert status("GET", f"{api}/repo/t/{secret}/{channel}/noarch/repodata.json") == 200
        assert status("DELETE", f"{api}/account/tokens/{token_id}", headers=first) == 204
        for secret in (secret1, secret2, secret3):
            assert status("GET", f"{api}/account", headers={"X-Auth": secret}) == 401
            assert status("GET", f"{api}/repo/t/{secret}/{channel}/noarch/repodata.json") == 401


# ---------------------------------------------------------------- issue 7 item 7, issue 8 item 6

def test_revocation_bites_on_the_next_request(taipan_server, conda_packages) -> None:  # type: ignore[no-untyped-def]
    session = bearer(taipan_server.login())
    with private_channel(taipan_server, conda_packages) as channel:
        token, token_id = new_token(taipan_server, session, ["artifact:download", "channel:edit"])
        forms = credential_forms(taipan_server, channel, token)
        assert set(statuses(forms).values()) == {200}
        index = f"{taipan_server.api}/repo/t/{token}/{channel}/noarch/repodata.json"
        etag = httpx.get(index).headers["etag"]
        assert status("GET", index, headers={"If-None-Match": etag}) == 304  # the cached hot path
        assert status("DELETE", f"{taipan_server.api}/account/tokens/{token_id}", headers=session) == 204
        assert status("GET", index, headers={"If-None-Match": etag}) == 401
        assert set(statuses(forms).values()) == {401}


def test_expiry_bites_on_the_next_request(taipan_server, conda_packages) -> None:  # type: ignore[no-untyped-def]
    session = bearer(taipan_server.login())
    with private_channel(taipan_server, conda_packages) as channel:
        ends = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=8)
        token, _ = new_token(taipan_server, session, ["artifact:download", "channel:edit"],
                             expires_at=ends.isoformat())
        forms = credential_forms(taipan_server, channel, token)
        # Keep the caches warm until just before the token expires. A round of requests that
        # ended after the expiry (a slow, loaded machine) proves nothing either way.
        while dt.datetime.now(dt.UTC) < ends - dt.timedelta(seconds=0.6):
            got = statuses(forms)
            if dt.datetime.now(dt.UTC) < ends:
                assert set(got.values()) == {200}
        time.sleep(max(0.0, (ends - dt.datetime.now(dt.UTC)).total_seconds()) + 0.1)
        assert set(statuses(forms).values()) == {401}
        r = httpx.get(f"{taipan_server.api}/repo/t/{token}/{channel}/noarch/repodata.json")
        assert r.json()["code"] == "token_expired"


def test_revocation_reaches_every_worker_within_a_second(server_factory, conda_packages) -> None:  # type: ignore[no-untyped-def]
    server = server_factory(workers=2)
    session = bearer(server.login())
    with private_channel(server, conda_packages) as channel:
        token, token_id = new_token(server, session, ["artifact:download", "channel:edit"])
        forms = credential_forms(server, channel, token)
        for _ in range(4):  # fresh connections land on both workers
            assert set(statuses(forms).values()) == {200}
        assert status("DELETE", f"{server.api}/account/tokens/{token_id}", headers=session) == 204
        time.sleep(1.0)
        for _ in range(4):
            assert set(statuses(forms).values()) == {401}


# ---------------------------------------------------------------- issue 7 item 10: logout

def test_logout_revokes_only_the_presented_credential(taipan_server) -> None:  # type: ignore[no-untyped-def]
    api = taipan_server.api
    session = taipan_server.login()
    secret1, token_id = new_token(taipan_server, bearer(session))
    secret2 = httpx.put(f"{api}/account/tokens/{token_id}", headers=bearer(session), json={}).json()["token"]
    assert status("POST", f"{api}/logout", headers={"X-Auth": secret2}) == 204
    assert status("GET", f"{api}/account", headers={"X-Auth": secret2}) == 401
    assert status("GET", f"{api}/account", headers={"X-Auth": secret1}) == 200  # the other client's
    assert status("POST", f"{api}/logout", headers={"X-Auth": secret1}) == 204
    ids = [t["id"] for t in httpx.get(f"{api}/account/tokens", headers=bearer(session)).json()["items"]]
    assert token_id not in ids  # its last secret gone, the token is gone
    assert status("POST", f"{api}/logout", headers=bearer(session)) == 204
    assert status("GET", f"{api}/account", headers=bearer(session)) == 401
    assert status("POST", f"{api}/logout") == 401


# ---------------------------------------------------------------- issue 7 items 8 and 22

def test_scopes_offered_and_permissions_shown(taipan_server) -> None:  # type: ignore[no-untyped-def]
    api = taipan_server.api
    user = make_user(taipan_server)
    user_session = bearer(taipan_server.login(user, PASSWORD))
    admin_session = bearer(taipan_server.login())
    offered = httpx.get(f"{api}/account/scopes", headers=user_session).json()["scopes"]
    assert not {"mirror:manage", "cve:manage", "system:manage"} & set(offered)
    assert {"mirror:view", "artifact:download", "token:manage"} <= set(offered)
    admin_offered = httpx.get(f"{api}/account/scopes", headers=admin_session).json()["scopes"]
    assert {"mirror:manage", "cve:manage", "system:manage"} <= set(admin_offered)
    r = httpx.post(f"{api}/account/tokens", headers=user_session, json={"name": "m", "scopes": ["mirror:manage"]})
    assert r.status_code == 400 and r.json()["code"] == "invalid_scope"
    # A token is offered (and shown) what it holds, no more.
    narrow, _ = new_token(taipan_server, user_session, ["artifact:download", "token:manage"])
    assert httpx.get(f"{api}/account/scopes", headers={"X-Auth": narrow}).json()["scopes"] == \
        ["artifact:download", "token:manage"]
    account = httpx.get(f"{api}/account", headers={"X-Auth": narrow}).json()
    assert account["username"] == user and account["user_id"] and account["permissions"] == \
        ["artifact:download", "token:manage"]
    assert httpx.get(f"{api}/account", headers=user_session).json()["permissions"] == offered


# ---------------------------------------------------------------- issue 7 item 9: system settings

def test_system_settings_and_channel_autocreate_on_first_login(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    api, admin = server.api, bearer(server.login())
    user = make_user(server)
    user_session = bearer(server.login(user, PASSWORD))
    assert httpx.get(f"{api}/account", headers=user_session).json()["default_channel_name"] == user
    assert status("GET", f"{api}/system/settings") == 401
    r = httpx.get(f"{api}/system/settings", headers=user_session)
    assert r.status_code == 403 and r.json()["code"] == "admin_required"
    assert status("PUT", f"{api}/system/settings", headers=user_session, json={"user_channel_autocreate": False}) \
        == 403
    assert httpx.get(f"{api}/system/settings", headers=admin).json() == {"user_channel_autocreate": True}
    for body, code in (({"user_channel_autocreate": "maybe"}, "invalid_setting"),
                       ({"user_channel_autocreate": False, "colour": "red"}, "unknown_setting")):
        r = httpx.put(f"{api}/system/settings", headers=admin, json=body)
        assert r.status_code == 400 and r.json()["code"] == code and r.json()["hint"]
    assert httpx.get(f"{api}/system/settings", headers=admin).json() == {"user_channel_autocreate": True}
    r = httpx.put(f"{api}/system/settings", headers=admin, json={"user_channel_autocreate": False})
    assert r.status_code == 200 and r.json() == {"user_channel_autocreate": False}
    quiet = make_user(server)
    quiet_session = bearer(server.login(quiet, PASSWORD))
    assert httpx.get(f"{api}/account", headers=quiet_session).json()["default_channel_name"] is None
    assert status("GET", f"{api}/channels/{quiet}", headers=admin) == 404
    # The channel comes with the first login, not with the account: made while off, first login while on.
    late = make_user(server)
    assert httpx.put(f"{api}/system/settings", headers=admin, json={"user_channel_autocreate": "true"}).json() == \
        {"user_channel_autocreate": True}
    assert status("GET", f"{api}/channels/{late}", headers=admin) == 404
    late_session = bearer(server.login(late, PASSWORD))
    channel = httpx.get(f"{api}/channels/{late}", headers=admin).json()
    assert channel["privacy"] == "private" and channel["owners"] == [late]
    assert httpx.get(f"{api}/account", headers=late_session).json()["default_channel_name"] == late
    # Only the first login: the user removes the channel, it does not come back.
    assert status("DELETE", f"{api}/channels/{late}", headers=late_session) == 202
    server.login(late, PASSWORD)
    assert status("GET", f"{api}/channels/{late}", headers=admin) == 404


# ---------------------------------------------------------------- issue 8 item 5: basic auth

def test_basic_auth_is_throttled_per_account_and_address(server_factory, conda_packages) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"TAIPAN_AUTH__FREE_LOGIN_FAILURES": "2", "TAIPAN_AUTH__FREE_ADDRESS_FAILURES": "6"})
    api = server.api
    channel = unique("pub")
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": channel}).raise_for_status()
    index = f"{api}/repo/{channel}/noarch/repodata.json"
    bob, carol = make_user(server), make_user(server)
    assert [status("GET", f"{api}/account", headers=basic(bob, "wrong-password")) for _ in range(2)] == [401, 401]
    # The account now waits, whatever the endpoint, even with the right password.
    for url, password in ((f"{api}/account", "wrong-again"), (index, "wrong-again"), (index, PASSWORD)):
        r = httpx.get(url, headers=basic(bob, password))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and r.json()["code"] == "login_throttled"
    # Per address: unknown names count too (2 + 4 = 6 failures from here), then everyone here waits.
    assert [status("GET", index, headers=basic(f"ghost{i}", "wrong")) for i in range(4)] == [401] * 4
    for method, url, kw in (("GET", index, {"headers": basic(f"ghost{uuid.uuid4().hex[:6]}", "x")}),
                            ("GET", f"{api}/account", {"headers": basic(carol, PASSWORD)}),
                            ("POST", f"{api}/auth/login", {"json": {"username": carol, "password": PASSWORD}})):
        r = httpx.request(method, url, **kw)  # type: ignore[arg-type]
        assert r.status_code == 429 and r.headers["Retry-After"], (url, r.text)


def test_unknown_users_cost_as_much_as_known_ones(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory({"TAIPAN_AUTH__FREE_LOGIN_FAILURES": "1000",
                             "TAIPAN_AUTH__FREE_ADDRESS_FAILURES": "1000"})
    known = make_user(server)
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    with httpx.Client(base_url=server.api, timeout=30) as c:
        for i in range(7):
            for kind, user in (("known", known), ("unknown", f"nobody{i}")):
                start = time.perf_counter()
                assert c.get("/account", headers=basic(user, "wrong-password")).status_code == 401
                timings[kind].append(time.perf_counter() - start)
    known_median, unknown_median = (statistics.median(timings[k]) for k in ("known", "unknown"))
    assert unknown_median >= 0.5 * known_median, timings
