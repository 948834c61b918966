"""Who may see and change what, as a matrix built from data: every caller (anonymous, authenticated,
member, owner, admin) x every credential form x every endpoint family x every channel privacy.

Taipan has no channel membership apart from ownership, so the "member" here is a member of the
owner's team holding a read-only token of the channel's owner (every *:view/history/download scope
and no other): it may see everything the owner sees and change nothing.

Each probe says what it is (read, write, admin, account) and which answer means "allowed"; the rules
below say who is allowed. A denied caller that may see the channel gets 403 (401 without
credentials); a caller that may not see the channel gets exactly the answer it gets for a channel
that does not exist. To cover a new endpoint, add a Probe (with the credential forms it takes).
"""

from __future__ import annotations

import base64
import subprocess
import sys
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

PASSWORD = "matrix-password-1"
PRIVACIES = ("public", "authenticated", "private")
ROLES = ("anonymous", "authenticated", "member", "owner", "admin")
# Credential forms: how a secret travels. "session" is a password login's secret as a Bearer token,
# "cookie" the web UI's login cookie, "t_path" a token in a package URL (/api/repo/t/<token>/...).
API_FORMS = ("x_auth", "bearer", "basic_token", "basic_password", "session")
REPO_FORMS = (*API_FORMS, "t_path")
UI_FORMS = ("cookie", "x_auth_ignored")
READ_SCOPES = ["channel:view", "channel:view-artifacts", "channel:history", "subchannel:view",
               "subchannel:view-artifacts", "subchannel:history", "artifact:view", "artifact:download",
               "mirror:view"]


@dataclass(frozen=True)
class Probe:
    family: str       # api | repo | ui | account | admin
    kind: str         # read | write | account | admin
    method: str
    path: str         # {ch}: the channel; {file}: the package file in it
    ok: tuple[int, ...]
    forms: tuple[str, ...]
    kwargs: dict = field(default_factory=dict, hash=False, compare=False)


JUNK = {"files": {"content": ("junk-1.0-0.conda", b"not a package")}}
PROBES = (
    Probe("api", "read", "GET", "/api/channels/{ch}", (200,), API_FORMS),
    Probe("api", "read", "GET", "/api/channels/{ch}/artifacts", (200,), API_FORMS),
    Probe("api", "read", "GET", "/api/channels/{ch}/artifacts/conda/hello/files", (200,), API_FORMS),
    Probe("api", "read", "GET", "/api/channels/{ch}/history", (200,), API_FORMS),
    Probe("api", "read", "GET", "/api/channels/{ch}/subchannels", (200,), API_FORMS),
    Probe("api", "read", "GET", "/api/channels/{ch}/mirrors", (200,), API_FORMS),
    Probe("api", "write", "PUT", "/api/channels/{ch}", (200,), API_FORMS, {"json": {"description": "probed"}}),
    # Rights are checked before the file is looked at: an allowed caller learns the file is bad (400).
    Probe("api", "write", "POST", "/api/channels/{ch}/artifacts", (400,), API_FORMS, JUNK),
    Probe("repo", "read", "GET", "/api/repo/{ch}/noarch/repodata.json", (200,), REPO_FORMS),
    Probe("repo", "read", "GET", "/api/repo/{ch}/noarch/{file}", (200,), REPO_FORMS),
    Probe("repo", "read", "GET", "/api/repo/{ch}/channeldata.json", (200,), REPO_FORMS),
    Probe("repo", "read", "GET", "/api/repo/{ch}/simple/", (200,), REPO_FORMS),
    Probe("repo", "write", "POST", "/api/repo/{ch}/", (400,), REPO_FORMS, JUNK),
    Probe("ui", "read", "GET", "/ui/channels/{ch}", (200,), UI_FORMS),
    Probe("ui", "read", "GET", "/ui/channels/{ch}/packages/hello", (200,), UI_FORMS),
    Probe("account", "account", "GET", "/api/account", (200,), API_FORMS),
    Probe("account", "tokens", "GET", "/api/account/tokens", (200,), API_FORMS),
    Probe("admin", "admin", "GET", "/api/system/settings", (200,), API_FORMS),
    Probe("admin", "admin", "GET", "/api/system/blob_cleanup", (200, 404), API_FORMS),
)


def can_see(role: str, privacy: str) -> bool:
    return privacy == "public" or (role != "anonymous" and (privacy == "authenticated"
                                                              or role in ("member", "owner", "admin")))


def allowed(role: str, form: str, probe: Probe, privacy: str) -> bool:
    if probe.family == "ui" and form == "x_auth_ignored":
        role = "anonymous"  # the web UI honours its login cookie only
    if probe.kind == "read":
        return can_see(role, privacy)
    if probe.kind == "write":
        return role in ("owner", "admin")
    if probe.kind == "account":
        return role != "anonymous"
    if probe.kind == "tokens":  # token management: a login, or a token that says token:manage
        return role in ("owner", "admin", "authenticated") and form in ("session", "basic_password")
    return role == "admin" and form != "t_path"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def basic(user: str | None, password: str | None) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Caller:
    role: str
    username: str | None = None
    token: str | None = None      # an API token (the member's is read-only)
    session: str | None = None    # a password login's secret

    def request(self, form: str, path: str) -> tuple[str, dict, dict]:
        """(path, headers, cookies) for this caller's credential in ``form``."""
        if self.role == "anonymous":
            return path, {}, {}
        if form == "x_auth" or form == "x_auth_ignored":
            return path, {"X-Auth": self.token}, {}
        if form == "bearer":
            return path, {"Authorization": f"Bearer {self.token}"}, {}
        if form == "basic_token":
            return path, {"Authorization": basic(self.token, "x-auth-token")}, {}
        if form == "basic_password":
            return path, {"Authorization": basic(self.username, PASSWORD)}, {}
        if form == "session":
            return path, {"Authorization": f"Bearer {self.session}"}, {}
        if form == "cookie":
            return path, {"Cookie": f"taipan_session={self.session}"}, {}
        if form == "t_path":
            return path.replace("/api/repo/", f"/api/repo/t/{self.token}/", 1), {}, {}
        raise AssertionError(form)

    def forms(self, probe: Probe) -> tuple[str, ...]:
        if self.role == "anonymous":
            return ("none",)
        if self.role == "member":  # a token only: no password, no login
            return tuple(f for f in probe.forms if f not in ("basic_password", "session", "cookie"))
        return probe.forms


def make_user(server, name: str, *flags: str) -> None:
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", PASSWORD,
                    *flags],
                   check=True, env={"TAIPAN_HOME": str(server.home), "PATH": "/usr/bin"}, capture_output=True)


def new_token(server, session: str, **body) -> str:
    r = httpx.post(f"{server.api}/account/tokens", json={"name": "matrix", **body},
                   headers={"Authorization": f"Bearer {session}"})
    r.raise_for_status()
    return r.json()["token"]


def _start_server(home):
    """tests/conftest.py's start_server (every conftest module is named 'conftest')."""
    import importlib.util
    from pathlib import Path

    name = "taipan_security_root_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "conftest.py")
        assert spec and spec.loader
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name].start_server(home)


@pytest.fixture(scope="module")
def world(tmp_path_factory, conda_packages):
    # A server of its own: the password forms must not meet other tests' failed sign-ins from
    # this address (they are throttled per client address).
    server = _start_server(tmp_path_factory.mktemp("matrix-home"))
    owner, stranger, admin = (unique(x).replace("-", "_") for x in ("owner", "user", "admin"))
    for name in (owner, stranger):
        make_user(server, name)
    make_user(server, admin, "--admin")
    owner_session, stranger_session = server.login(owner, PASSWORD), server.login(stranger, PASSWORD)
    admin_session = server.login(admin, PASSWORD)
    callers = {
        "anonymous": Caller("anonymous"),
        "authenticated": Caller("authenticated", stranger, new_token(server, stranger_session, scopes=["repo"]),
                                stranger_session),
        "member": Caller("member", owner, new_token(server, owner_session, scopes=READ_SCOPES)),
        "owner": Caller("owner", owner, new_token(server, owner_session, scopes=["repo"]), owner_session),
        "admin": Caller("admin", admin, new_token(server, admin_session, scopes=["repo", "system:manage"]),
                        admin_session),
    }
    hello = conda_packages["hello"]
    channels = {}
    with httpx.Client(base_url=server.api, headers={"X-Auth": callers["owner"].token}) as c:
        for privacy in PRIVACIES:
            name = unique(privacy[:4])
            c.post("/channels", json={"name": name, "privacy": privacy}).raise_for_status()
            c.post(f"/channels/{name}/artifacts",
                   files={"content": (hello.name, hello.read_bytes())}).raise_for_status()
            channels[privacy] = name
    yield {"server": server, "callers": callers, "channels": channels, "file": hello.name}
    server.stop()


def _answer(r: httpx.Response, name: str) -> tuple[int, str, str | None]:
    return r.status_code, r.text.replace(name, "<CH>"), r.headers.get("www-authenticate")


@pytest.mark.parametrize("role", ROLES)
def test_access_matrix(world, role):
    server, caller = world["server"], world["callers"][role]
    missing = unique("nothere")
    failures = []
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for probe in PROBES:
            for form in caller.forms(probe):
                for privacy in PRIVACIES:
                    if probe.family in ("account", "admin") and privacy != "public":
                        continue  # not about a channel: once per form is enough
                    ch = world["channels"][privacy]

                    def call(name: str, probe: Probe = probe, form: str = form) -> httpx.Response:
                        path, headers, _ = caller.request(form, probe.path.format(ch=name, file=world["file"]))
                        http.cookies.clear()
                        return http.request(probe.method, path, headers=headers, **probe.kwargs)

                    r = call(ch)
                    where = f"{role}/{form} {probe.method} {probe.path} on {privacy}: {r.status_code} {r.text[:200]}"
                    if allowed(role, form, probe, privacy):
                        if r.status_code not in probe.ok:
                            failures.append("should be allowed: " + where)
                        continue
                    if r.status_code in probe.ok or r.status_code < 400:
                        failures.append("should be denied: " + where)
                        continue
                    if probe.family in ("ui",) or probe.kind not in ("read", "write"):
                        if r.status_code not in (303, 401, 403, 404):
                            failures.append("unexpected denial: " + where)
                        continue
                    effective = "anonymous" if form == "x_auth_ignored" else role
                    if can_see(effective, privacy):
                        expected = 401 if effective == "anonymous" else 403
                        if r.status_code != expected:
                            failures.append(f"should be {expected}: " + where)
                    elif _answer(r, ch) != _answer(call(missing), missing):
                        failures.append("hidden channel answers unlike a missing one: " + where)
    assert not failures, "\n".join(failures)


def test_a_revoked_or_foreign_credential_is_refused_in_every_form(world):
    """A credential that is not (or no longer) valid never falls back to anonymous access."""
    server = world["server"]
    dead = Caller("authenticated", "nobody", "0" * 48, "1" * 48)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for form in REPO_FORMS:
            path, headers, _ = dead.request(form, f"/api/repo/{world['channels']['public']}/noarch/repodata.json")
            r = http.get(path, headers=headers)
            assert r.status_code == 401, (form, r.status_code, r.text)
