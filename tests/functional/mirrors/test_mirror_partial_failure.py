"""A run where some files cannot be fetched says so in the sync state, and keeps the rest."""

from __future__ import annotations

from conftest import served_all, unique, wait_state


def test_failed_files_are_reported_in_last_exception(cli, mirror_server, upstream) -> None:
    channel = unique("partial")
    cli.run("channel", "--create", channel)
    upstream.fail["/zlib-1.3.1-h0_0.conda"] = 99  # every attempt answers 503
    cli.run("mirror", "--create", "p", "--channel", channel, "--source", upstream.url, "--mode", "active",
            "--run_now", "--subdirs", "linux-64", "--only_spec", "zlib")
    m = wait_state(mirror_server, channel, "p", timeout=90)
    state = m["sync_state"]
    assert state["count"]["failed"] == 1 and state["count"]["active"] == 1
    assert state["last_exception"] and "zlib-1.3.1-h0_0.conda" in state["last_exception"]
    assert served_all(mirror_server, channel, ("linux-64",)) == {"linux-64": {"zlib-1.2.13-h0_0.conda"}}
    shown = cli.run("mirror", "--sync-state", "p", "--channel", channel).stdout
    assert "could not be fetched" in shown
    upstream.fail.clear()


def _serve_raw(root, subdir: str, raw: bytes) -> None:
    import zstandard

    (root / subdir / "repodata.json").write_bytes(raw)
    (root / subdir / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor().compress(raw))


def test_non_json_repodata_fails_with_a_clear_error(cli, mirror_server, upstream) -> None:
    channel = unique("html")
    cli.run("channel", "--create", channel)
    _serve_raw(upstream.root, "linux-64", b"<html><body>Sign in</body></html>")
    out = cli.run("mirror", "--create", "h", "--channel", channel, "--source", upstream.url, "--subdirs",
                  "linux-64", "--run_now", rc=None)
    # --run_now waits for the upstream's first answer; a run that failed by then is reported
    assert out.returncode == 0 or "is not a conda repodata.json" in out.stderr, out.stderr
    m = wait_state(mirror_server, channel, "h", ("failed",), timeout=30)
    assert "is not a conda repodata.json" in m["sync_state"]["last_exception"]


def test_malformed_records_are_skipped_not_fatal(cli, mirror_server, upstream) -> None:
    import json

    channel = unique("malformed")
    cli.run("channel", "--create", channel)
    rd = json.loads((upstream.root / "linux-64" / "repodata.json").read_bytes())
    rd["packages.conda"]["broken-1-0.conda"] = {"name": "broken"}  # no version
    rd["packages.conda"]["worse-1-0.conda"] = "not a record"
    _serve_raw(upstream.root, "linux-64", json.dumps(rd).encode())
    cli.run("mirror", "--create", "mf", "--channel", channel, "--source", upstream.url, "--subdirs", "linux-64",
            "--only_spec", "zlib", "--only_spec", "broken", "--run_now")
    wait_state(mirror_server, channel, "mf", timeout=30)
    assert served_all(mirror_server, channel, ("linux-64",)) == {
        "linux-64": {"zlib-1.3.1-h0_0.conda", "zlib-1.2.13-h0_0.conda"}}


def test_rerun_restores_a_mirrored_file_removed_by_hand(cli, mirror_server, upstream) -> None:
    channel = unique("restore")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "r", "--channel", channel, "--source", upstream.url, "--subdirs", "linux-64",
            "--only_spec", "zlib", "--run_now")
    wait_state(mirror_server, channel, "r")
    both = {"zlib-1.3.1-h0_0.conda", "zlib-1.2.13-h0_0.conda"}
    assert served_all(mirror_server, channel, ("linux-64",))["linux-64"] == both
    cli.run("remove", "-f", f"{channel}::zlib")
    assert served_all(mirror_server, channel, ("linux-64",))["linux-64"] == set()
    # the upstream did not change (its repodata answers 304), but the channel did
    cli.run("mirror", "--update", "r", "--channel", channel, "--run_now")
    wait_state(mirror_server, channel, "r", pred=lambda m: m["sync_state"].get("finished_at"))
    assert served_all(mirror_server, channel, ("linux-64",))["linux-64"] == both
