"""Every conda record is checked against the repodata record schema (as rattler reads it): a bad
upload is refused with a 400, a bad upstream record is skipped and counted by the mirror run, and
the published repodata.json stays readable by rattler."""

from __future__ import annotations

import io
import json
import tarfile

import httpx
import pytest
import rattler
from mirror_upstream import read_repodata, write_repodata

from conftest import api, unique, wait_state


def _tar_bz2(index: dict) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        for member, content in (("info/index.json", index), ("info/about.json", {})):
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _index(**changes) -> dict:
    out = {"name": "odd", "version": "1.0", "build": "0", "build_number": 0, "depends": [],
           "subdir": "noarch", "noarch": "generic", "license": "MIT", "timestamp": 1700000000000}
    out.update(changes)
    return out


def _rattler_reads(tmp_path, content: bytes, subdir: str, names: list[str]) -> int:
    path = tmp_path / f"{subdir}-repodata.json"
    path.write_bytes(content)
    sparse = rattler.SparseRepoData(rattler.Channel("x"), subdir, path)
    return sum(len(sparse.load_records(rattler.PackageName(n))) for n in names)


@pytest.mark.parametrize(("changes", "why"), [
    ({"build_number": "0"}, "build_number"),
    ({"build_number": -1}, "build_number"),
    ({"timestamp": 1.7e12}, "timestamp"),
    ({"depends": "zlib"}, "depends"),
    ({"depends": ["zlib", 3]}, "depends"),
    ({"constrains": None}, "constrains"),
    ({"license": 5}, "license"),
    ({"noarch": "weird"}, "noarch"),
    ({"features": ["x"]}, "features"),
])
def test_uploads_against_the_schema_are_refused(mirror_server, tmp_path, changes, why) -> None:
    channel = unique("schema")
    with api(mirror_server) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        r = c.post(f"/channels/{channel}/artifacts", data={"filetype": "conda1"},
                   files={"content": ("odd-1.0-0.tar.bz2", _tar_bz2(_index(**changes)))})
        assert r.status_code == 400, r.text
        body = r.json()
        assert body["code"] == "invalid_package" and why in body["message"] and body["hint"], body
        assert c.get(f"/channels/{channel}/artifacts").json()["total_count"] == 0
        # a good one is taken, and the index stays readable
        r = c.post(f"/channels/{channel}/artifacts", data={"filetype": "conda1"},
                   files={"content": ("odd-1.0-0.tar.bz2", _tar_bz2(_index()))})
        assert r.status_code in (200, 201), r.text
    content = httpx.get(f"{mirror_server.api}/repo/{channel}/noarch/repodata.json").content
    assert _rattler_reads(tmp_path, content, "noarch", ["odd"]) == 1


def test_bad_upstream_records_are_skipped_and_counted(cli, mirror_server, upstream, tmp_path) -> None:
    rd = read_repodata(upstream.root, "linux-64")
    good = rd["packages.conda"]["zlib-1.3.1-h0_0.conda"]
    rd["packages.conda"]["zlib-9.0-h0_0.conda"] = {**good, "version": "9.0", "build_number": "0"}
    rd["packages.conda"]["zlib-9.1-h0_0.conda"] = {**good, "version": "9.1", "timestamp": 1.7e12}
    rd["packages.conda"]["zlib-9.2-h0_0.conda"] = {**good, "version": 9.2}
    rd["packages.conda"]["../../evil-1.0-0.conda"] = {**good, "name": "evil"}
    rd["packages.conda"]["notalist-1.0-0.conda"] = ["not", "a", "record"]
    write_repodata(upstream.root, "linux-64", rd)
    channel = unique("badup")
    cli.run("channel", "--create", channel)
    cli.run("mirror", "--create", "m", "--channel", channel, "--source", upstream.url, "--subdirs", "linux-64",
            "--only_spec", "zlib", "--only_spec", "evil", "--only_spec", "notalist", "--run_now")
    m = wait_state(mirror_server, channel, "m")  # the run completes
    s = m["sync_state"]
    assert s["count"]["invalid"] == 5, s
    reasons = "\n".join(s["invalid_records"])
    for text in ("zlib-9.0-h0_0.conda: build_number", "zlib-9.1-h0_0.conda: timestamp",
                 "zlib-9.2-h0_0.conda: version", "evil-1.0-0.conda: not a conda package file name",
                 "notalist-1.0-0.conda: the record is a list"):
        assert text in reasons, reasons
    content = httpx.get(f"{mirror_server.api}/repo/{channel}/linux-64/repodata.json").content
    served = json.loads(content)
    published = set(served["packages"]) | set(served["packages.conda"])
    assert {"zlib-1.3.1-h0_0.conda", "zlib-1.2.13-h0_0.conda"} <= published
    assert not {fn for fn in published if "9." in fn or "evil" in fn or "notalist" in fn}
    assert _rattler_reads(tmp_path, content, "linux-64", ["zlib"]) == len(published)
    shown = cli.run("mirror", "--show", "m", "--channel", channel).stdout
    assert any(line.split("|")[0].strip() == "invalid" and line.split("|")[1].strip() == "5"
               for line in shown.splitlines()), shown
