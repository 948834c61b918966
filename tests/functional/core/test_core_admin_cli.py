"""The `taipan` server command: db upgrade and user management, against a real database."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx


def taipan(home, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TAIPAN_HOME": str(home), "TAIPAN_ADMIN_PASSWORD": "ignored-password"}
    return subprocess.run([sys.executable, "-m", "taipan.admin.main", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_db_upgrade_and_user_commands(tmp_path):
    home = tmp_path / "home"
    r = taipan(home, "db", "upgrade")
    assert r.returncode == 0 and "head" in r.stderr and (home / "taipan.db").exists()
    r = taipan(home, "user", "create", "carol", "--password", "carol-password")
    assert r.returncode == 0, r.stderr
    r = taipan(home, "user", "create", "dave", "--admin", stdin="dave-password\n")
    assert r.returncode == 0, r.stderr
    listed = taipan(home, "user", "list").stdout.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [["carol", "user"], ["dave", "admin"]]
    r = taipan(home, "user", "create", "carol", "--password", "carol-password")
    assert r.returncode == 1 and "already exists" in r.stderr and "hint:" in r.stderr
    r = taipan(home, "user", "create", "Bad Name", "--password", "carol-password")
    assert r.returncode == 1 and "Invalid user name" in r.stderr
    r = taipan(home, "user", "create", "erin", "--password", "short")
    assert r.returncode == 1 and "too short" in r.stderr
    assert taipan(home, "user", "passwd", "carol", "--password", "carol-new-password").returncode == 0
    r = taipan(home, "user", "passwd", "nobody", "--password", "whatever-123")
    assert r.returncode == 1 and "No user named" in r.stderr
    assert taipan(home, "user", "delete", "carol").returncode == 0
    r = taipan(home, "user", "delete", "dave")
    assert r.returncode == 1 and "last admin" in r.stderr
    assert [line.split("\t")[0] for line in taipan(home, "user", "list").stdout.splitlines()] == ["dave"]


def test_first_start_generates_and_prints_an_admin_password(server_factory):
    env = {"TAIPAN_ADMIN_PASSWORD": ""}
    server = server_factory(env)
    log = server.log.read_text()
    assert "Created the admin account 'admin' with password: " in log
    password = log.split("with password: ")[1].split()[0]
    r = httpx.post(f"{server.api}/auth/login", json={"username": "admin", "password": password})
    assert r.status_code == 200
    assert "conda-repo login" in log
