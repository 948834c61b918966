"""The mirror command as the Anaconda Server page documents it, through the installed `conda-repo`:
True/False flags, one rule for clearing filters, YAML property output, typographic quotes, conflicts
with files the channel already holds, and the real reason a non-admin is refused."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import yaml

from conftest import api, unique, wait_state


def _filters(server, channel: str, name: str) -> dict:
    with api(server) as c:
        r = c.get(f"/channels/{channel}/mirrors/{name}")
        assert r.status_code == 200, r.text
        return r.json()["filters"]


def test_documented_flags_quotes_clearing_and_yaml(cli, mirror_server) -> None:
    channel = unique("rules")
    cli.run("channel", "--create", channel)
    # The seed's own lines: `--exclude_uncurated_cve_packages True`, and the license list as the
    # page prints it, with typographic quotes.
    cli.run("mirror", "--create", "m", "--channel", channel, "--source", "https://conda.example.invalid/ch",
            "--exclude_uncurated_cve_packages", "True", "--only_signed", "yes", "--subdirs", "noarch, linux-64",
            "--licenses", "\u201c-public_domain,-none,mit,apache,agpl\u201d", "--only_spec", "zlib",
            "--cve_score", "7.1", "--date_from", "2024-01-01", "--date_to", "2024-06-01")
    f = _filters(mirror_server, channel, "m")
    assert f["exclude_non_curated_cve"] is True and f["only_signed"] is True
    assert f["include_licenses"] == ["mit", "apache", "agpl"]
    assert f["exclude_licenses"] == ["public_domain", "none"]
    assert f["subdirs"] == ["noarch", "linux-64"] and f["only_specs"] == ["zlib"]

    # --show NAME PROPERTY prints YAML, not Python reprs
    out = cli.run("mirror", "--show", "m", "--channel", channel, "filters").stdout
    assert "{'" not in out and "['" not in out, out
    assert yaml.safe_load(out) == {"filters": f}
    out = cli.run("mirror", "--show", "m", "--channel", channel, "state", "cron").stdout
    assert yaml.safe_load(out) == {"state": "pending", "cron": "0 0 * * *"}

    # False switches a flag off; the other filters stay
    cli.run("mirror", "--update", "m", "--channel", channel, "--exclude_uncurated_cve_packages", "False")
    f = _filters(mirror_server, channel, "m")
    assert "exclude_non_curated_cve" not in f and f["only_signed"] is True and f["subdirs"]

    # One rule: an empty value clears that filter, subdirs included
    cli.run("mirror", "--update", "m", "--channel", channel, "--subdirs", "")
    f = _filters(mirror_server, channel, "m")
    assert "subdirs" not in f and f["only_specs"] == ["zlib"] and f["include_licenses"]
    cli.run("mirror", "--update", "m", "--channel", channel, "--licenses", "", "--only_spec", "",
            "--cve_score", "", "--date_to", "", "--only_signed", "0")
    assert _filters(mirror_server, channel, "m") == {}
    helptext = cli.run("mirror", "--help", token=False).stdout
    assert "an empty value clears" in helptext and '--subdirs ""' in helptext

    # A bad value names what the user typed, without the quotes, and says how to fix it
    out = cli.run("mirror", "--update", "m", "--channel", channel, "--licenses",
                  "\u201c-publicdomain,mit\u201d", rc=None)
    assert out.returncode == 2 and "Unknown license family 'publicdomain'" in out.stderr, out.stderr
    out = cli.run("mirror", "--update", "m", "--channel", channel, "--only_signed", "maybe", rc=None)
    assert out.returncode == 2 and "expected True or False" in out.stderr
    # the API strips the quotes too, and echoes the family as typed
    with api(mirror_server) as c:
        r = c.put(f"/channels/{channel}/mirrors/m", json={"filters": {"include_licenses": ["\u201cMIT\u201d"]}})
        assert r.status_code == 202 and r.json()["filters"]["include_licenses"] == ["mit"], r.text
        r = c.put(f"/channels/{channel}/mirrors/m", json={"filters": {"exclude_licenses": ["Public-Domian"]}})
        assert r.status_code == 400 and "'Public-Domian'" in r.json()["message"], r.text


def test_conflicts_with_files_already_in_the_channel_are_reported(cli, mirror_server, upstream) -> None:
    channel = unique("clash")
    cli.run("channel", "--create", channel)
    common = ["--channel", channel, "--source", upstream.url, "--subdirs", "linux-64,noarch",
              "--only_spec", "zlib", "--only_spec", "pydata", "--run_now"]
    cli.run("mirror", "--create", "first", *common)
    first = wait_state(mirror_server, channel, "first")
    stored = first["sync_state"]["count"]["passive"]
    assert stored >= 3 and first["sync_state"]["count"]["conflicts"] == 0
    cli.run("mirror", "--create", "second", *common)
    second = wait_state(mirror_server, channel, "second")
    s = second["sync_state"]
    assert s["selected"] == stored and s["count"]["passive"] == 0
    assert s["count"]["conflicts"] == stored
    assert "linux-64/zlib-1.3.1-h0_0.conda" in s["conflicts"]
    shown = cli.run("mirror", "--show", "second", "--channel", channel).stdout
    assert any(line.split("|")[0].strip() == "conflicts" and line.split("|")[1].strip() == str(stored)
               for line in shown.splitlines()), shown
    assert "zlib-1.3.1-h0_0.conda" in shown


def test_non_admins_hear_the_real_reason(cli, mirror_server) -> None:
    username = f"user_{uuid.uuid4().hex[:6]}"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", username, "--password",
                    "user-password-1"], check=True, capture_output=True,
                   env={**os.environ, "TAIPAN_HOME": str(mirror_server.home)})
    session = httpx.post(f"{mirror_server.api}/auth/login",
                         json={"username": username, "password": "user-password-1"}).json()["token"]
    auth = {"Authorization": f"Bearer {session}"}
    r = httpx.post(f"{mirror_server.api}/account/tokens", headers=auth,
                   json={"name": "dl", "scopes": ["artifact:download", "channel:view"]})
    assert r.status_code in (200, 201), r.text
    narrow = r.json()["token"]
    r = httpx.post(f"{mirror_server.api}/account/tokens", headers=auth, json={"name": "all"})
    assert r.status_code in (200, 201), r.text
    full = r.json()["token"]  # every scope the user may hold
    with api(mirror_server) as c:  # an admin made a mirror in the user's own channel
        r = c.post(f"/channels/{username}/mirrors", json={"mirror_name": "theirs",
                                                           "source_root": "https://conda.example.invalid/c"})
        assert r.status_code == 201, r.text
    for args in (["--create", "x", "--channel", username, "--source", "https://conda.example.invalid/c"],
                 ["--update", "theirs", "--channel", username, "--subdirs", "noarch"],
                 ["--delete", "theirs", "--channel", username],
                 ["--restart", "theirs", "--channel", username]):
        for token in (narrow, full):
            out = cli.run("mirror", *args, token=token, rc=None)
            assert out.returncode == 6, (args, out.stdout, out.stderr)
            assert "Only administrators can manage mirrors" in out.stderr, (args, out.stderr)
            assert "scope" not in out.stderr, out.stderr
    # auth --list-scopes offers only what the user can hold
    scopes = cli.run("auth", "--list-scopes", token=full).stdout.split()
    assert "artifact:download" in scopes and "mirror:view" in scopes
    assert not {"mirror:manage", "cve:manage", "system:manage"} & set(scopes)
