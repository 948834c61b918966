"""Mirror a real upstream through the CLI with each filter; compare the served repodata with the
selection computed here, independently of the server's filter code."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mirror_upstream import upstream_records
from rattler import Channel, ChannelConfig, MatchSpec, SparseRepoData

from conftest import api, served_all, unique, wait_state

SUBDIRS = ("linux-64", "noarch", "osx-arm64")
# The license strings of the upstream fixture, mapped to families by hand.
FAMILY = {"Zlib": "other", "BSD-3-Clause": "bsd", "MIT": "mit", "GPL-3.0-or-later": "gpl3", "LGPL-2.1": "lgpl",
          "Apache-2.0": "apache", "PSF-2.0": "psf", "Public-Domain": "public_domain", "": "none"}


def dedupe(files: dict[str, set[str]]) -> dict[str, set[str]]:
    """A .tar.bz2 whose .conda twin is kept is dropped."""
    return {sd: {f for f in fns if not (f.endswith(".tar.bz2") and f[:-8] + ".conda" in fns)}
            for sd, fns in files.items()}


def expected(root: Path, keep: Any, subdirs: tuple[str, ...] = SUBDIRS) -> dict[str, set[str]]:
    recs = upstream_records(root)
    out = {sd: {fn for fn, r in recs.get(sd, {}).items() if keep(fn, r)} if sd in subdirs else set()
           for sd in SUBDIRS}
    return dedupe(out)


def matching(root: Path, specs: list[str]) -> set[str]:
    """File names matching any spec, by rattler's own repodata reader and matcher."""
    out: set[str] = set()
    for sd in SUBDIRS:
        sparse = SparseRepoData(Channel("up", ChannelConfig()), sd, root / sd / "repodata.json")
        from rattler.repo_data.sparse import PackageFormatSelection

        out |= {r.file_name for r in sparse.load_matching_records([MatchSpec(s) for s in specs],
                                                                  PackageFormatSelection.BOTH)}
        sparse.close()
    return out


def day_ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


CASES: list[tuple[str, list[str], Any]] = [
    ("all", [], lambda root: expected(root, lambda fn, r: True)),
    ("subdirs", ["--subdirs", "noarch, linux-64"],
     lambda root: expected(root, lambda fn, r: True, ("noarch", "linux-64"))),
    ("exclude-licenses", ["--licenses", "-gpl3,-lgpl,-none"],
     lambda root: expected(root, lambda fn, r: FAMILY[r.get("license", "")] not in ("gpl3", "lgpl", "none"))),
    ("include-licenses", ["--licenses", "mit,bsd"],
     lambda root: expected(root, lambda fn, r: FAMILY[r.get("license", "")] in ("mit", "bsd"))),
    ("only-spec", ["--only_spec", "torch >=2.1", "--only_spec", "zlib 1.3.*"],
     lambda root: expected(root, lambda fn, r, m=None: fn in matching(root, ["torch >=2.1", "zlib 1.3.*"]))),
    ("exclude-include", ["--exclude_spec", "torch", "--exclude_spec", "zlib", "--include_spec", "torch==2.0"],
     lambda root: expected(root, lambda fn, r: fn not in matching(root, ["torch", "zlib"])
                           or fn in matching(root, ["torch==2.0"]))),
    ("dates", ["--date_from", "2024-01-01", "--date_to", "2024-03-31"],
     lambda root: expected(root, lambda fn, r: day_ms("2024-01-01") <= r["timestamp"] < day_ms("2024-04-01"))),
    # app 1.0 -> libfoo >=2 -> zlib >=1.3; app 1.0 -> pydata (noarch) -> zlib (any); app 0.9 -> libfoo (any)
    ("dependencies", ["--only_spec", "app", "--include-dependencies"],
     lambda root: {"linux-64": {"app-1.0-h0_0.conda", "app-0.9-h0_0.tar.bz2", "libfoo-2.0-h0_0.conda",
                                "libfoo-1.0-h0_0.conda", "zlib-1.3.1-h0_0.conda", "zlib-1.2.13-h0_0.conda"},
                   "noarch": {"pydata-0.5-pyh0_0.conda"}, "osx-arm64": set()}),
]


@pytest.mark.parametrize(("case", "args", "expect"), CASES, ids=[c[0] for c in CASES])
def test_passive_mirror_with_filter(case, args, expect, cli, mirror_server, upstream) -> None:
    channel = unique(f"f-{case}")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "m", "--channel", channel, "--source", upstream.url, "--run_now", *args)
    m = wait_state(mirror_server, channel, "m")
    want = expect(upstream.root)
    assert served_all(mirror_server, channel) == want
    count = m["sync_state"]["count"]
    assert count["passive"] == sum(len(v) for v in want.values()) and count["failed"] == 0
    # passive: only the index was fetched, no package file
    assert not [k for k in upstream.hits if k.endswith((".conda", ".tar.bz2"))]


def test_counts_and_channel_filters(cli, mirror_server, upstream) -> None:
    channel = unique("chf")
    cli.run("channel", "--create", channel)
    with api(mirror_server) as c:
        r = c.put(f"/channels/{channel}", json={"filters": {"exclude_licenses": ["bsd"], "exclude_specs": ["zlib"]}})
        assert r.status_code == 200, r.text
    name = unique("counted")
    cli.run("mirror", "--create", name, "--channel", channel, "--source", upstream.url, "--run_now",
            "--licenses", "-gpl3", "--date_from", "2024-01-01", "--date_to", "2024-12-31")
    m = wait_state(mirror_server, channel, name)
    recs = upstream_records(upstream.root)
    flat = [(fn, r) for sd in recs for fn, r in recs[sd].items()]
    ch_license = [fn for fn, r in flat if FAMILY[r.get("license", "")] == "bsd"]
    ch_specs = [fn for fn, r in flat if r["name"] == "zlib" and fn not in ch_license]
    rest = [(fn, r) for fn, r in flat if fn not in ch_license and fn not in ch_specs]
    dated = [fn for fn, r in rest if not day_ms("2024-01-01") <= r["timestamp"] < day_ms("2025-01-01")]
    lic = [fn for fn, r in rest if fn not in dated and FAMILY[r.get("license", "")] == "gpl3"]
    count = m["sync_state"]["count"]
    assert count["channel_filtered"] == {"license": len(ch_license), "exclude_specs": len(ch_specs)}
    mf = count["mirror_filtered"]
    assert (mf["date"], mf["license"], mf["only_specs"], mf["exclude_specs"]) == (len(dated), len(lic), 0, 0)
    # --show and --sync-state print the same, as people read them
    shown = cli.run("mirror", "--show", name, "--channel", channel).stdout
    assert "Mirror Details:" in shown and "state: completed" in shown and "mode: passive" in shown
    assert "exclude_licenses" in shown and "cron: 0 0 * * *" in shown
    state = cli.run("mirror", "--sync-state", name).stdout
    assert re.search(rf"channel_filtered\.license +\| {len(ch_license)}\n", state), state
    assert cli.run("mirror", "--show", name, "state", "mode", "--channel", channel).stdout.split("\n")[:2] == [
        "state: completed", "mode: passive"]
