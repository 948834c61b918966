"""config, login, logout, whoami and the one-line errors, through the real executable."""

from __future__ import annotations

import datetime as dt
import json
import stat

import httpx
import pexpect
import yaml
from cli_harness import CONDA_REPO, Cli, unique


def test_version_and_help(fresh_cli: Cli) -> None:
    assert "Command line client (version" in fresh_cli.run("--version").stdout
    for command in ("config", "login", "channel", "upload", "copy", "auth", "wizard", "search"):
        assert f"usage: conda-repo {command}" in fresh_cli.run(command, "--help").stdout


def test_no_site_configured_says_how_to_set_one(fresh_cli: Cli) -> None:
    proc = fresh_cli.run("channel", "--list", rc=7)
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No repository site is configured" in lines[0]
    assert "conda-repo config --set-site" in lines[0] and "--set sites.NAME.url" in lines[0]


def test_set_site_probes_https_then_http(fresh_cli: Cli) -> None:
    domain = f"127.0.0.1:{fresh_cli.server.port}"  # type: ignore[attr-defined]
    fresh_cli.run("config", "--set-site", domain)
    config = yaml.safe_load((fresh_cli.home / ".conda" / "repo-cli-config.yaml").read_text())
    assert config == {"sites": {domain: {"url": f"http://{domain}/api"}}, "default_site": domain}
    assert fresh_cli.run("config", "--get", "default_site").stdout.strip() == domain


def test_set_site_unreachable(fresh_cli: Cli) -> None:
    proc = fresh_cli.run("config", "--set-site", "127.0.0.1:9", rc=9)
    assert "No Taipan server answered at 127.0.0.1:9" in proc.stderr
    assert not (fresh_cli.home / ".conda" / "repo-cli-config.yaml").exists()


def test_seed_extended_configuration_and_show_sources(fresh_cli: Cli) -> None:
    api = fresh_cli.server.api  # type: ignore[attr-defined]
    fresh_cli.run("config", "--set", "sites.anaconda-server.url", api)
    fresh_cli.run("config", "--set", "default_site", "anaconda-server")
    fresh_cli.run("config", "--set", "oauth2", "true")
    fresh_cli.run("config", "--set", "ssl_verify", "false")
    path = fresh_cli.home / ".conda" / "repo-cli-config.yaml"
    out = fresh_cli.run("config", "--show-sources").stdout
    assert out.startswith(f"==> {path} <==") and "anaconda-server" in out
    assert yaml.safe_load(path.read_text())["oauth2"] is True
    assert f"User Config: {path}" in fresh_cli.run("config", "--files").stdout
    fresh_cli.run("config", "--remove", "oauth2")
    assert fresh_cli.run("config", "--get", "oauth2").stdout.strip() == "False"  # back to the default
    assert fresh_cli.run("config", "--get", "sites.nope.url", rc=4).stderr.startswith("error:")
    shown = yaml.safe_load(fresh_cli.run("config", "--show").stdout)
    assert shown["sites"]["anaconda-server"]["url"] == api and shown["ssl_verify"] is False
    assert "not a valid site URL" in fresh_cli.run("config", "--set", "sites.x.url", "ftp:/x", rc=2).stderr


def test_login_stores_token_where_conda_finds_it(fresh_cli: Cli) -> None:
    s = fresh_cli.server
    fresh_cli.run("config", "--set", "sites.local.url", s.api)  # type: ignore[attr-defined]
    proc = fresh_cli.run("login", "--username", "admin", "--password", s.admin_password,  # type: ignore[attr-defined]
                         "--hostname", unique("host"))
    assert "login as ADMIN successful" in proc.stderr
    files = [fresh_cli.token_file(url, kind) for url in (s.api, s.api + "/repo")  # type: ignore[attr-defined]
             for kind in ("tokens", "binstar")]
    tokens = {f.read_text() for f in files}
    assert len(tokens) == 1 and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    account = yaml.safe_load(fresh_cli.run("whoami").stdout)
    assert account["username"] == "admin" and "admin" in account["roles"]
    assert "logout successful" in fresh_cli.run("logout").stderr
    assert not any(f.exists() for f in files)
    assert "You are not logged in" in fresh_cli.run("whoami", rc=3).stderr


def test_login_rotates_this_hosts_token(fresh_cli: Cli) -> None:
    s = fresh_cli.server
    fresh_cli.run("config", "--set", "sites.local.url", s.api)  # type: ignore[attr-defined]
    host = unique("rot")
    args = ("login", "--username", "admin", "--password", s.admin_password, "--hostname", host)  # type: ignore[attr-defined]
    fresh_cli.run(*args)
    first = fresh_cli.token()
    fresh_cli.run(*args)
    second = fresh_cli.token()
    assert first != second
    tokens = json.loads(fresh_cli.run("auth", "--list", "--json").stdout)
    mine = [t for t in tokens if t["name"] == f"repo-cli-token-{host}"]
    assert len(mine) == 1 and set(mine[0]["scopes"]) >= {"channel:create", "artifact:create"}
    assert mine[0]["expires_at"].startswith((dt.date.today() + dt.timedelta(days=31)).isoformat())
    fresh_cli.run("login", *args[1:], "--force-scopes")
    tokens = json.loads(fresh_cli.run("auth", "--list", "--json").stdout)
    assert [t["id"] for t in tokens if t["name"] == f"repo-cli-token-{host}"] != [mine[0]["id"]]


def test_wrong_password_is_one_line(fresh_cli: Cli) -> None:
    fresh_cli.run("config", "--set", "sites.local.url", fresh_cli.server.api)  # type: ignore[attr-defined]
    proc = fresh_cli.run("login", "--username", "admin", "--password", "wrong", rc=3)
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


def test_interactive_login_allows_three_attempts(fresh_cli: Cli) -> None:
    fresh_cli.run("config", "--set", "sites.local.url", fresh_cli.server.api)  # type: ignore[attr-defined]
    child = pexpect.spawn(CONDA_REPO, ["login", "--hostname", unique("tty")], env=fresh_cli.env,
                          encoding="utf-8", timeout=30)
    child.expect("Username: ")
    child.sendline("admni")  # the typo is in the username, so it is asked again (the last one as default)
    child.expect("Password: ")
    child.sendline(fresh_cli.server.admin_password)  # type: ignore[attr-defined]
    child.expect("Invalid")
    child.expect(r"Username \[admni\]: ")
    child.sendline("admin")
    child.expect("Password: ")
    child.sendline("not-it")
    child.expect("Invalid")
    child.expect(r"Username \[admin\]: ")
    child.sendline("")  # Enter keeps it
    child.expect("Password: ")
    child.sendline(fresh_cli.server.admin_password)  # type: ignore[attr-defined]
    child.expect("login as ADMIN successful")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and fresh_cli.token()


def test_expired_token_is_one_line_error(cli: Cli) -> None:
    s = cli.server
    # Far enough ahead that a slow machine still creates it before it ends; then wait for the
    # instant the server reports (a token already expired when asked for is refused with 400).
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)).isoformat()
    r = httpx.post(s.api + "/account/tokens", json={"name": unique("short"), "expires_at": soon},  # type: ignore[attr-defined]
                   headers={"X-Auth": cli.token()})
    r.raise_for_status()
    token = r.json()["token"]
    ends = dt.datetime.fromisoformat(r.json()["expires_at"])
    if ends.tzinfo is None:
        ends = ends.replace(tzinfo=dt.UTC)
    import time

    time.sleep(max(0.0, (ends - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    proc = cli.run("-t", token, "channel", "--list", rc=3)
    assert "The token has expired" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    for f in (cli.token_file(s.api), cli.token_file(s.api, "binstar")):  # type: ignore[attr-defined]
        f.write_text(token)
    proc = cli.run("channel", "--list", rc=3)  # no TTY: no login prompt, the one-line error
    assert proc.stderr.strip() == "error: The token has expired (hint: Sign in again with `conda-repo login`)"


def test_401_on_a_tty_asks_to_sign_in_and_retries(fresh_cli: Cli) -> None:
    fresh_cli.run("config", "--set", "sites.local.url", fresh_cli.server.api)  # type: ignore[attr-defined]
    # (channel --list works signed out: it lists the public channels; creating one needs a sign-in.)
    name = unique("relogin")
    child = pexpect.spawn(CONDA_REPO, ["channel", "--create", name], env=fresh_cli.env, encoding="utf-8",
                          timeout=30)
    child.expect("requires authentication, please sign in:")
    child.expect("Username: ")
    child.sendline("admin")
    child.expect("Password: ")
    child.sendline(fresh_cli.server.admin_password)  # type: ignore[attr-defined]
    child.expect("login as ADMIN successful")
    child.expect(f"Channel {name} created")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
