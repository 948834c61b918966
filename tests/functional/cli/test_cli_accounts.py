"""Accounts through the installed `conda-repo`: token files where conda reads them, CLIs sharing a token
name, token lifetimes in seconds, whoami permissions, server settings, logout, scopes by role."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import unquote_plus

import httpx
import yaml
from cli_harness import Cli, unique

PASSWORD = "cli-user-password-1"


class EnvCli(Cli):
    """A Cli with extra environment variables (e.g. BINSTAR_CONFIG_DIR)."""

    extra: dict[str, str]

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, **getattr(self, "extra", {})}


def conda_tokens(token_dir: Path) -> dict[str, str]:
    """What conda >= 24.1 reads (its anaconda_client gateway): every *.token file, keyed by the
    unquoted URL, the content taken as is."""
    if not token_dir.is_dir():
        return {}
    return {unquote_plus(p.name)[: -len(".token")]: p.read_text() for p in token_dir.iterdir()
            if p.name.endswith(".token")}


def token_for(tokens: dict[str, str], channel_url: str) -> str | None:
    """conda picks the token whose URL is a prefix of the channel URL."""
    matches = [url for url in tokens if channel_url.startswith(url)]
    return tokens[max(matches, key=len)] if matches else None


def make_user(server, name: str | None = None) -> str:  # type: ignore[no-untyped-def]
    name = name or f"c{uuid.uuid4().hex[:8]}"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", PASSWORD],
                   check=True, env={**os.environ, "TAIPAN_HOME": str(server.home)}, capture_output=True)
    return name


def signed_in(cli: Cli, username: str = "admin", password: str | None = None, host: str | None = None) -> Cli:
    cli.home.mkdir(parents=True, exist_ok=True)
    cli.run("config", "--set", "sites.local.url", cli.server.api)  # type: ignore[attr-defined]
    cli.run("config", "--set", "default_site", "local")
    cli.run("login", "--username", username, "--password", password or cli.server.admin_password,  # type: ignore[attr-defined]
            "--hostname", host or unique("host"))
    return cli


# ---------------------------------------------------------------- issue 7 item 3

def test_login_writes_tokens_where_current_and_old_conda_read_them(fresh_cli: Cli) -> None:
    s = fresh_cli.server
    signed_in(fresh_cli)
    home = fresh_cli.home
    current, legacy = home / ".config" / "binstar", home / ".local" / "share" / "binstar"
    ours = home / ".conda" / "tokens"
    channel = unique("condatok")
    token = fresh_cli.token()
    with s.client(token) as c:  # type: ignore[attr-defined]
        c.post("/channels", json={"name": channel}).raise_for_status()
        c.put(f"/channels/{channel}", json={"privacy": "private"}).raise_for_status()
    channel_url = f"{s.api}/repo/{channel}"  # type: ignore[attr-defined]
    for directory in (current, legacy, ours):
        files = list(directory.glob("*.token"))
        assert len(files) == 2 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        # conda reads the content as is: no newline may follow the token.
        assert token_for(conda_tokens(directory), channel_url) == token
    assert httpx.get(f"{s.api}/repo/t/{token}/{channel}/noarch/repodata.json").status_code == 200  # type: ignore[attr-defined]
    fresh_cli.run("logout")
    assert not any(list(d.glob("*.token")) for d in (current, legacy, ours))


def test_binstar_config_dir_is_honoured(fresh_cli: Cli) -> None:
    cli = EnvCli(fresh_cli.home, fresh_cli.server)
    cli.extra = {"BINSTAR_CONFIG_DIR": str(fresh_cli.home / "binstar-config")}
    signed_in(cli)
    data = fresh_cli.home / "binstar-config" / "data"
    assert token_for(conda_tokens(data), f"{cli.server.api}/repo/anything") == cli.token()  # type: ignore[attr-defined]
    # Both conda generations read $BINSTAR_CONFIG_DIR/data then: nothing is spread elsewhere.
    assert not (fresh_cli.home / ".config" / "binstar").exists()
    assert not (fresh_cli.home / ".local" / "share" / "binstar").exists()
    cli.run("logout")
    assert conda_tokens(data) == {}


# ---------------------------------------------------------------- issue 7 item 5

def test_two_clis_sharing_a_token_name_stay_signed_in(taipan_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    host = unique("shared")
    first, second = (signed_in(Cli(tmp_path / name, taipan_server), host=host) for name in ("one", "two"))
    signed_in(first, host=host)  # and once more: three refreshes of one token
    for cli in (first, second):
        assert yaml.safe_load(cli.run("whoami").stdout)["username"] == "admin"
        conda_token = token_for(conda_tokens(cli.home / ".config" / "binstar"), f"{taipan_server.api}/repo/x")
        assert httpx.get(f"{taipan_server.api}/account", headers={"X-Auth": conda_token}).status_code == 200
    tokens = json.loads(first.run("auth", "--list", "--json").stdout)
    assert len([t for t in tokens if t["name"] == f"repo-cli-token-{host}"]) == 1


# ---------------------------------------------------------------- issue 7 item 6

def test_max_age_has_second_resolution(cli: Cli) -> None:
    name = unique("minute")
    before = dt.datetime.now(dt.UTC)
    proc = cli.run("auth", "--create", "-n", name, "-s", "artifact:download", "--max-age", "60")
    token = proc.stdout.strip()
    listed = [t for t in json.loads(cli.run("auth", "--list", "--json").stdout) if t["name"] == name]
    expires = listed[0]["expires_at"]
    assert f"expires {expires})" in proc.stderr  # the message and the list show the same instant
    lasts = dt.datetime.fromisoformat(expires) - before
    assert dt.timedelta(seconds=50) < lasts < dt.timedelta(seconds=70)
    assert cli.run("-t", token, "whoami").returncode == 0
    # And it really ends: a ten-second token works, then stops working once its instant passed
    # (the CLI's own start-up can take seconds on a loaded machine, hence not shorter).
    short_name = unique("short")
    short = cli.run("auth", "--create", "-n", short_name, "-s", "artifact:download", "--max-age", "10")
    assert cli.run("-t", short.stdout.strip(), "whoami").returncode == 0
    ends = [dt.datetime.fromisoformat(t["expires_at"]) for t in json.loads(cli.run("auth", "--list", "--json").stdout)
            if t["name"] == short_name][0]
    time.sleep(max(0.0, (ends - dt.datetime.now(dt.UTC)).total_seconds()) + 0.5)
    assert "expired" in cli.run("-t", short.stdout.strip(), "whoami", rc=3).stderr


# ---------------------------------------------------------------- issue 7 item 8

def test_whoami_lists_permissions(cli: Cli) -> None:
    account = yaml.safe_load(cli.run("whoami").stdout)
    assert account["username"] == "admin" and account["user_id"] and account["default_channel_name"] == "admin"
    assert {"channel:create", "artifact:download", "token:manage", "system:manage"} <= set(account["permissions"])
    narrow = cli.run("auth", "--create", "-n", unique("dl"), "-s", "artifact:download").stdout.strip()
    assert yaml.safe_load(cli.run("-t", narrow, "whoami").stdout)["permissions"] == ["artifact:download"]


# ---------------------------------------------------------------- issue 7 item 9

def test_admin_show_get_set(cli: Cli, tmp_path: Path) -> None:
    assert yaml.safe_load(cli.run("admin", "--show").stdout) == {"user_channel_autocreate": True}
    assert cli.run("admin", "--get", "user_channel_autocreate").stdout.strip() == "true"
    try:
        proc = cli.run("admin", "--set", "user_channel_autocreate", "false")
        assert "user_channel_autocreate is now false" in proc.stderr
        assert json.loads(cli.run("admin", "--show", "--json").stdout) == {"user_channel_autocreate": False}
    finally:
        cli.run("admin", "--set", "user_channel_autocreate", "yes")
    assert cli.run("admin", "--get", "user_channel_autocreate").stdout.strip() == "true"
    bad = cli.run("admin", "--set", "user_channel_autocreate", "maybe", rc=2).stderr
    assert bad.startswith("error: Invalid value 'maybe' for user_channel_autocreate") and "true or false" in bad
    assert "Unknown setting 'colour'" in cli.run("admin", "--set", "colour", "red", rc=2).stderr
    assert "Unknown setting 'colour'" in cli.run("admin", "--get", "colour", rc=2).stderr
    user = make_user(cli.server)
    other = signed_in(Cli(tmp_path / "other", cli.server), user, PASSWORD)
    assert "Only administrators" in other.run("admin", "--show", rc=6).stderr


# ---------------------------------------------------------------- issue 7 item 10

def test_logout_revokes_the_token_on_the_server(fresh_cli: Cli) -> None:
    signed_in(fresh_cli)
    token = fresh_cli.token()
    api = fresh_cli.server.api  # type: ignore[attr-defined]
    assert httpx.get(f"{api}/account", headers={"X-Auth": token}).status_code == 200
    assert "logout successful" in fresh_cli.run("logout").stderr
    assert httpx.get(f"{api}/account", headers={"X-Auth": token}).status_code == 401
    assert not fresh_cli.token_file(api).exists()


def test_logout_works_offline(fresh_cli: Cli) -> None:
    dead = "http://127.0.0.1:9/api"
    fresh_cli.run("config", "--set", "sites.gone.url", dead)
    fresh_cli.run("config", "--set", "default_site", "gone")
    files = [fresh_cli.token_file(dead), fresh_cli.token_file(dead, "binstar")]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("0123456789abcdef")
    proc = fresh_cli.run("logout")
    assert "warning: Could not revoke the token on the server" in proc.stderr
    assert "logout successful" in proc.stderr and not any(f.exists() for f in files)


# ---------------------------------------------------------------- issue 7 item 22 (scopes)

def test_list_scopes_offers_only_what_the_user_can_hold(cli: Cli, tmp_path: Path) -> None:
    admin_scopes = set(cli.run("auth", "--list-scopes").stdout.split())
    assert {"mirror:manage", "cve:manage", "system:manage", "token:manage"} <= admin_scopes
    user = signed_in(Cli(tmp_path / "user", cli.server), make_user(cli.server), PASSWORD)
    user_scopes = set(user.run("auth", "--list-scopes").stdout.split())
    assert not {"mirror:manage", "cve:manage", "system:manage"} & user_scopes
    assert {"mirror:view", "artifact:download", "token:manage"} <= user_scopes
