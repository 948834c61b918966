"""The download-history report (issue 12, part 2), through the real `conda-repo report`: the rows are the
downloads this test makes itself (anonymous, with a token, in a private channel); owners see their
channels, admins everything; a million-row report streams with flat server memory."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
from cli_harness import Cli, unique

PASSWORD = "report-password-1"


def make_user(server, name: str) -> None:  # type: ignore[no-untyped-def]
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "user", "create", name, "--password", PASSWORD],
                   check=True, env={**os.environ, "TAIPAN_HOME": str(server.home)}, capture_output=True)


def api_token(server, username: str, password: str, name: str) -> str:  # type: ignore[no-untyped-def]
    session = server.login(username, password)
    r = httpx.post(server.api + "/account/tokens", json={"name": name},
                   headers={"Authorization": f"Bearer {session}"})
    r.raise_for_status()
    return str(r.json()["token"])


def wait_for_rows(cli: Cli, channels: str, n: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 30
    while True:
        cli.run("report", "--date_from", date.today().isoformat(), "--channels", channels, "--filename", "poll")
        items = json.loads((cli.home / "poll.json").read_text())["downloaded_items"]
        if len(items) >= n or time.monotonic() > deadline:
            return items
        time.sleep(0.3)


def test_report_rows_rights_and_formats(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path],
                                        tmp_path: Path) -> None:
    server = cli.server
    public = channel("rep-pub")
    cli.run("upload", "-c", public, str(conda_packages["hello"]), str(conda_packages["world"]))
    owner = unique("owner").replace("-", "")
    make_user(server, owner)
    owner_token = api_token(server, owner, PASSWORD, "owner-ci")
    private = unique("rep-priv")
    with httpx.Client(base_url=server.api, headers={"X-Auth": owner_token}) as http:  # type: ignore[attr-defined]
        http.post("/channels", json={"name": private, "privacy": "private"}).raise_for_status()
        http.post(f"/channels/{private}/artifacts", data={"filetype": "conda1"},
                  files={"content": (conda_packages["hello"].name, conda_packages["hello"].read_bytes())}
                  ).raise_for_status()
    admin_token = api_token(server, server.admin_username, server.admin_password, "report-admin")  # type: ignore[attr-defined]
    repo = server.api + "/repo"  # type: ignore[attr-defined]
    assert httpx.get(f"{repo}/{public}/noarch/hello-1.0-0.conda", headers={"User-Agent": "conda/24.1 anon"}
                     ).status_code == 200
    assert httpx.get(f"{repo}/{public}/linux-64/world-2.0-h1_0.tar.bz2",
                     headers={"X-Auth": admin_token, "User-Agent": "conda/24.1 admin"}).status_code == 200
    assert httpx.get(f"{repo}/t/{owner_token}/{private}/noarch/hello-1.0-0.conda",
                     headers={"User-Agent": "conda/24.1 owner"}).status_code == 200
    both = f"{public}, {private}"
    items = wait_for_rows(cli, both, 3)
    rows = {i["user_agent"]: i for i in items}
    assert len(items) == 3 and set(rows) == {"conda/24.1 anon", "conda/24.1 admin", "conda/24.1 owner"}
    anon, admin, own = rows["conda/24.1 anon"], rows["conda/24.1 admin"], rows["conda/24.1 owner"]
    assert (anon["username"], anon["token_name"], anon["channel"]) == ("anonymous", None, public)
    assert (admin["username"], admin["token_name"], admin["package"], admin["version"], admin["platform"],
            admin["filename"], admin["ckey"], admin["family"]) == (
        "admin", "report-admin", "world", "2.0", "linux-64", "world-2.0-h1_0.tar.bz2",
        "linux-64/world-2.0-h1_0.tar.bz2", "conda")
    assert admin["size"] == conda_packages["world"].stat().st_size
    assert (own["username"], own["token_name"], own["channel"]) == (owner, "owner-ci", private)
    assert own["client_address"] == "127.0.0.1" and own["cve_ids"] == [] and own["cve_max_score"] is None
    stamp = datetime.fromisoformat(str(own["downloaded_at"]).replace("Z", "+00:00"))
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=5)
    # The seed's example spelling: comma lists with spaces; CSV; a path without the extension.
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "usage_q1"
    cli.run("report", "--date_from", date.today().isoformat(), "--date_to", date.today().isoformat(),
            "--file-type", "csv", "--user_names", "anonymous,", owner, "--channels", f"{public},", private,
            "--filename", str(target))
    with open(tmp_path / "out" / "usage_q1.csv", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert sorted(r["username"] for r in table) == sorted(["anonymous", owner])
    assert {r["filename"] for r in table} == {"hello-1.0-0.conda"}
    # The owner sees their channel only; asking for another's channel is refused.
    owner_cli = Cli(tmp_path / "owner-home", server)
    owner_cli.home.mkdir()
    owner_cli.run("config", "--set", "sites.local.url", server.api)  # type: ignore[attr-defined]
    owner_cli.run("config", "--set", "default_site", "local")
    owner_cli.run("-t", owner_token, "report", "--date_from", date.today().isoformat())
    mine = json.loads(next(owner_cli.home.glob("artifact_downloads_*.json")).read_text())["downloaded_items"]
    assert {i["channel"] for i in mine} == {private}
    proc = owner_cli.run("-t", owner_token, "report", "--date_from", date.today().isoformat(), "--channels", public,
                         rc=6)
    assert f"You are not an owner of channel '{public}'" in proc.stderr
    # More than a year, or a bad date: a clear refusal, no file.
    proc = cli.run("report", "--date_from", "2023-01-01", "--date_to", "2024-01-02", "--filename", "long", rc=2)
    assert "longer than one year" in proc.stderr and not (cli.home / "long.json").exists()
    cli.run("report", "--date_from", "2023-01-01", "--date_to", "2024-01-01", "--filename", "year")
    assert json.loads((cli.home / "year.json").read_text())["downloaded_items"] is not None
    assert "not a date" in cli.run("report", "--date_from", "2023-13-01", rc=2).stderr
    assert httpx.post(server.api + "/reports/artifact_downloads",  # type: ignore[attr-defined]
                      json={"from_date": "2024-01-01"}).status_code == 401


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def test_a_million_row_report_streams_with_flat_memory(server_factory) -> None:  # type: ignore[no-untyped-def]
    server = server_factory()
    token = server.admin_token()
    n = 1_000_000
    started = time.monotonic()
    with sqlite3.connect(server.home / "taipan.db") as db:
        db.execute(
            "WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x + 1 < ?) "
            "INSERT INTO downloads (at, channel_id, channel_path, file_id, family, package, version, ckey, "
            "username, token_name, subdir, filename, size, user_agent, remote_addr) "
            "SELECT printf('2024-06-%02d %02d:%02d:%02d.000000', 1 + x % 28, (x / 3600) % 24, (x / 60) % 60, x % 60),"
            " 'c0', 'bulk', 'f' || (x % 1000), 'conda', 'pkg' || (x % 1000), '1.0', "
            " 'noarch/pkg' || (x % 1000) || '-1.0-0.conda', 'user' || (x % 50), 'ci', 'noarch', "
            " 'pkg' || (x % 1000) || '-1.0-0.conda', 12345, 'conda/24.1', '10.0.0.' || (x % 250) FROM c", (n,))
    inserted = time.monotonic() - started
    baseline = _rss_kib(server.proc.pid)
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_kib(server.proc.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    rows, size = 0, 0
    try:
        with httpx.stream("POST", server.api + "/reports/artifact_downloads", headers={"X-Auth": token},
                          json={"from_date": "2024-06-01", "to_date": "2024-06-30", "download_as": "csv"},
                          timeout=120) as r:
            assert r.status_code == 200
            for chunk in r.iter_bytes():
                rows += chunk.count(b"\n")
                size += len(chunk)
    finally:
        done.set()
        sampler.join()
    elapsed = time.monotonic() - started
    print(f"\n{n} rows inserted in {inserted:.1f}s; report of {size / 2**20:.0f} MiB in {elapsed - inserted:.1f}s; "
          f"server RSS {baseline / 1024:.0f} -> peak {peak / 1024:.0f} MiB")
    assert rows == n + 1  # the header and one line per download
    # The report is ~120 MiB of CSV; a server that held it (or its rows) in memory would grow by far more.
    assert peak - baseline < 80 * 1024, (baseline, peak)
