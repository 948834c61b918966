"""CVEs end to end: `taipan cve import` into a running server's database, `conda-repo cves` (list, show,
show-files, curate), scores in file listings, matching on upload, and who may see and curate what."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cli_harness import Cli, unique

DATA = Path(__file__).parents[2] / "data" / "cve"
PASSWORD = "joe-password-1"


def taipan(server, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "taipan.admin.main", *args], capture_output=True, text=True,
                          env={**os.environ, "TAIPAN_HOME": str(server.home)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_cves_end_to_end(server_factory, package_builder, tmp_path: Path) -> None:
    server = server_factory()
    cli = Cli(tmp_path / "home", server)
    (tmp_path / "home").mkdir()
    cli.run("config", "--set", "sites.t.url", server.api)
    cli.run("config", "--set", "default_site", "t")
    cli.run("login", "--username", server.admin_username, "--password", server.admin_password,
            "--hostname", "cve-test")
    chan = unique("sec")
    cli.run("channel", "--create", chan)
    cli.run("channel", "--lock", chan)
    cli.run("upload", "-c", chan, str(package_builder("openssl", "1.1.1s", "linux-64")),
            str(package_builder("zlib", "1.2.13", "win-64")))

    out = taipan(server, "cve", "import", str(DATA))
    assert "17 new" in out.stderr

    listed = json.loads(cli.run("cves", "--list", "--json", "--limit", "100").stdout)
    assert listed["total_count"] == 17
    by_id = {c["id"]: c for c in listed["items"]}
    assert by_id["CVE-2023-0286"]["packages_count"] == 1 and by_id["CVE-2022-37434"]["packages_count"] == 0
    assert [c["score"] for c in listed["items"]][:1] == [9.8]  # sorted by score, highest first
    page = json.loads(cli.run("cves", "--list", "--json", "--offset", "15", "--limit", "5").stdout)
    assert len(page["items"]) == 2

    shown = cli.run("cves", "--show", "CVE-2018-18074").stdout
    assert "CVSS3 metrics" in shown and "CVSS2 metrics" in shown and "attackVector" in shown and "accessVector" in shown
    files = json.loads(cli.run("cves", "--show-files", "CVE-2023-0286", "--json").stdout)
    assert [(i["ckey"], i["cve_status"], i["channel_name"]) for i in files["items"]] == [
        ("linux-64/openssl-1.1.1s-0.conda", "reported", chan)]
    table = cli.run("channel", "--list-files", f"{chan}::openssl").stdout
    assert "7.4" in table and "reported" in table
    details = json.loads(cli.run("channel", "--list-files", f"{chan}::openssl", "--full-details").stdout)
    assert (details[0]["cve_score"], details[0]["cve_status"]) == (7.4, "reported")

    # A file uploaded after the import is matched on upload; packages count their CVEs.
    cli.run("upload", "-c", chan, str(package_builder("libcurl", "8.3.0", "linux-64")))
    admin = server.client(server.admin_token())
    arts = {a["name"]: a for a in admin.get(f"/channels/{chan}/artifacts").json()["items"]}
    assert (arts["libcurl"]["cve_count"], arts["openssl"]["cve_count"], arts["zlib"]["cve_count"]) == (2, 1, 0)
    curl = admin.get(f"/channels/{chan}/artifacts/conda/libcurl/files").json()["items"][0]
    assert (curl["cve_score"], curl["cve_status"]) == (9.8, "reported")

    # Curation: the file's score drops to its remaining CVE's, and the history says who and why.
    cli.run("cves", "--curate", "CVE-2023-38545", "--status", "cleared", "--note", "built without SOCKS5")
    curl = admin.get(f"/channels/{chan}/artifacts/conda/libcurl/files").json()["items"][0]
    assert (curl["cve_score"], curl["cve_status"]) == (3.7, "reported")
    cve = admin.get("/cves/CVE-2023-38545").json()
    assert cve["curated"] and cve["history"][0]["note"] == "built without SOCKS5"
    assert cve["history"][0]["username"] == server.admin_username
    cli.run("cves", "--curate", "CVE-2023-38546", "--status", "disputed")
    curl = admin.get(f"/channels/{chan}/artifacts/conda/libcurl/files").json()["items"][0]
    assert (curl["cve_score"], curl["cve_status"]) == (None, "disputed")
    bad = cli.run("cves", "--curate", "CVE-2023-38546", "--status", "fixed", rc=None)
    assert bad.returncode != 0 and "reported, active" in bad.stderr
    missing = cli.run("cves", "--show", "CVE-1999-0001", rc=None)
    assert missing.returncode != 0 and "No CVE" in missing.stderr

    # Rights: anonymous callers see nothing; a user sees CVEs but not the files of a private channel,
    # and cannot curate; an admin token without cve:manage cannot curate either.
    assert httpx.get(server.api + "/cves").status_code == 401
    taipan(server, "user", "create", "joe", "--password", PASSWORD)
    joe = server.client(server.login("joe", PASSWORD))
    assert joe.get("/cves").json()["total_count"] == 17
    assert joe.get("/cves/CVE-2023-0286/files").json() == {"total_count": 0, "items": []}
    assert joe.get("/cves/CVE-2023-0286").json()["packages"] == []
    assert joe.put("/cves/CVE-2023-0286", json={"status": "cleared"}).status_code == 403
    session = server.login()
    viewer = httpx.post(server.api + "/account/tokens", json={"name": "v", "scopes": ["cve:view"]},
                        headers={"Authorization": f"Bearer {session}"}).json()["token"]
    assert server.client(viewer).put("/cves/CVE-2023-0286", json={"status": "cleared"}).status_code == 403
    assert admin.put("/cves/CVE-2023-0286", json={"status": "cleared", "extra": 1}).status_code == 400
    assert admin.get("/cves/CVE-2023-0286").json()["status"] == "reported"

    # Channel filters: a file that breaks them leaves the index (not the channel) and comes back when
    # its CVE is cleared; uploads that break them are refused.
    def indexed() -> set[str]:
        repodata = admin.get(f"/repo/{chan}/linux-64/repodata.json").json()
        return {r["name"] for r in {**repodata["packages"], **repodata["packages.conda"]}.values()}

    assert "openssl" in indexed()
    cli.run("channel", "--set-filters", chan, "--cve_score", "7", "--exclude_uncurated_cve_packages", "False")
    assert "cve_score_threshold=7.0" in cli.run("channel", "--show", chan).stdout
    deadline = time.monotonic() + 10
    while "openssl" in indexed() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "openssl" not in indexed() and "libcurl" in indexed()
    assert admin.get(f"/channels/{chan}/artifacts/conda/openssl/files").json()["total_count"] == 1
    history = json.loads(cli.run("channel", "--history", chan, "--json").stdout)["items"]
    assert any(e["event_type"] == "artifacts_withheld" for e in history)
    refused = cli.run("upload", "-c", chan, str(package_builder("openssl", "1.1.1s", "linux-64", build="1")), rc=None)
    assert refused.returncode != 0 and "CVE filter" in refused.stderr + refused.stdout
    cli.run("cves", "--curate", "CVE-2023-0286", "--status", "cleared")
    deadline = time.monotonic() + 10
    while "openssl" not in indexed() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "openssl" in indexed()
    history = json.loads(cli.run("channel", "--history", chan, "--json").stdout)["items"]
    assert any(e["event_type"] == "artifacts_restored" for e in history)
    cli.run("channel", "--clear-filters", chan)
    assert "Filters" in cli.run("channel", "--show", chan).stdout
