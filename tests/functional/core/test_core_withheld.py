"""A file withheld by its channel's CVE filters cannot be downloaded: its URL answers the 404 of a file
the channel does not have (GET, HEAD, Range; anonymous or admin; the in-memory fast path included, which
had the file remembered), also in a frozen channel, whose index stops listing it; its SBOM answers the
same 404 (by its URL and by its bare file name); once its CVE is cleared it downloads again."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgpack
import zstandard

DATA = Path(__file__).parents[2] / "data" / "cve"


def dzst(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


def wait_for(check, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def test_withheld_files_answer_404_until_restored(server_factory, package_builder) -> None:
    server = server_factory()
    token = server.admin_token()
    openssl = package_builder("openssl", "1.1.1s", "linux-64")  # CVE-2023-0286 (7.4) in the sample data
    zlib = package_builder("zlib", "1.3.1", "linux-64")
    admin = server.client(token)
    for ch, more in (("guarded", {}), ("kept", {"frozen": True})):
        assert admin.post("/channels", json={"name": ch}).status_code == 201
        for p in (openssl, zlib):
            r = admin.post(f"/channels/{ch}/artifacts", files={"content": (p.name, p.read_bytes())})
            assert r.status_code == 201, r.text
        r = admin.put(f"/channels/{ch}", json={"filters": {"cve_score_threshold": 7.0}, **more})
        assert r.status_code == 200, r.text

    def url(ch: str, p: Path) -> str:
        return f"{server.api}/repo/{ch}/linux-64/{p.name}"

    def listed(ch: str) -> set[str]:
        rd = httpx.get(f"{server.api}/repo/{ch}/linux-64/repodata.json").json()
        return {*rd["packages"], *rd["packages.conda"]}

    data = openssl.read_bytes()
    for ch in ("guarded", "kept"):
        for _ in range(3):  # found in the database once, then answered from memory
            got = httpx.get(url(ch, openssl))
            assert got.status_code == 200 and got.content == data
    assert openssl.name in listed("guarded")

    # The CVE data arrives: openssl scores 7.4 and is withheld in both channels.
    imported = subprocess.run([sys.executable, "-m", "taipan.admin.main", "cve", "import", str(DATA)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TAIPAN_HOME": str(server.home)})
    assert imported.returncode == 0, imported.stderr
    files = admin.get("/channels/guarded/artifacts/conda/openssl/files").json()["items"]
    assert [(f["cve_score"], f["cve_status"]) for f in files] == [(7.4, "reported")]

    missing_url = f"{server.api}/repo/guarded/linux-64/openssl-9.9-0.conda"
    missing = httpx.get(missing_url)
    assert missing.status_code == 404

    def like_missing(r: httpx.Response) -> bool:
        """The answer of a file the channel does not have, nothing that tells it is withheld."""
        if r.status_code != 404:
            return False
        if r.request.method == "HEAD":
            return True
        want = {k: v.replace("openssl-9.9-0.conda", openssl.name) for k, v in missing.json().items()}
        return r.json() == want and r.headers["content-type"] == missing.headers["content-type"]

    wait_for(lambda: openssl.name not in listed("guarded"), "openssl is still in guarded's index")
    assert listed("guarded") == {zlib.name}
    # A frozen channel's index drops it too (it must not offer a file its filters block), and the
    # download goes.
    wait_for(lambda: openssl.name not in listed("kept"), "openssl is still in kept's index")
    assert listed("kept") == {zlib.name}
    wait_for(lambda: httpx.get(url("kept", openssl)).status_code == 404, "openssl still downloads from kept")
    with httpx.Client() as anon, server.client(token) as owner:
        for ch in ("guarded", "kept"):
            for _ in range(3):
                for client, target in ((anon, url(ch, openssl)), (owner, f"/repo/{ch}/linux-64/{openssl.name}")):
                    assert like_missing(client.get(target))
                    assert like_missing(client.head(target))
                    assert like_missing(client.get(target, headers={"Range": "bytes=0-9"}))
            other = anon.get(url(ch, zlib))  # the channel's other files are served as before
            assert other.status_code == 200 and other.content == zlib.read_bytes()
            # Its SBOM neither, by either URL form (conda-repo-cli's `sbom --ckey` asks the file's URL,
            # `sbom --package` the bare file name): the answer of a file the channel does not have.
            for client, prefix in ((anon, f"{server.api}/repo/{ch}"), (owner, f"/repo/{ch}")):
                for path in (f"linux-64/{openssl.name}", openssl.name):
                    no_sbom = client.get(f"{prefix}/{path.replace(openssl.name, 'openssl-9.9-0.conda')}",
                                         params={"sbom": "download"})
                    assert no_sbom.status_code == 404, no_sbom.text
                    for fmt in ("spdx", "cyclonedx"):
                        r = client.get(f"{prefix}/{path}", params={"sbom": "download", "format": fmt})
                        want = {k: v.replace("openssl-9.9-0.conda", openssl.name)
                                for k, v in no_sbom.json().items()}
                        assert r.status_code == 404 and r.json() == want, r.text
                assert client.get(f"{prefix}/{zlib.name}", params={"sbom": "download"}).status_code == 200

    # Curation clears the CVE: the file is restored and downloads again, in both channels.
    r = admin.put("/cves/CVE-2023-0286", json={"status": "cleared", "note": "not built with X.400"})
    assert r.status_code == 200, r.text
    for ch in ("guarded", "kept"):
        wait_for(lambda ch=ch: openssl.name in listed(ch), f"openssl did not come back to {ch}'s index")
    for ch in ("guarded", "kept"):
        wait_for(lambda ch=ch: httpx.get(url(ch, openssl)).status_code == 200,
                 f"openssl does not download from {ch}")
        for _ in range(3):
            got = httpx.get(url(ch, openssl))
            assert got.status_code == 200 and got.content == data
        for sbom_url in (url(ch, openssl), f"{server.api}/repo/{ch}/{openssl.name}"):
            r = httpx.get(sbom_url, params={"sbom": "download"})
            assert r.status_code == 200 and r.json()["spdxVersion"] == "SPDX-2.3", r.text
    admin.close()


def _advisory(cve: str, ecosystem: str, name: str) -> dict:
    return {"id": f"TEST-{cve}", "aliases": [cve], "modified": "2026-01-02T00:00:00Z",
            "published": "2026-01-01T00:00:00Z", "details": f"A test advisory for {name}",
            "affected": [{"package": {"ecosystem": ecosystem, "name": name},
                          "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.0"}]}]}]}


def test_frozen_channel_indexes_drop_withheld_files_and_hold_the_rest(server_factory, package_builder,
                                                                      python_dists, r_packages, tmp_path) -> None:
    """A frozen channel keeps the files it had when frozen, less those its CVE filters withhold since,
    in every index a client reads: conda's repodata (plain, .zst, current) and shards, the simple pages
    (HTML and JSON) and R's PACKAGES. Restored files come back; what was uploaded while frozen stays out
    (withheld and restored meanwhile or not) until the channel is unfrozen."""
    server = server_factory()
    admin = server.client(server.admin_token())
    ch, base = "icebox", f"{server.api}/repo/icebox"
    openssl = package_builder("openssl", "1.1.1s", "linux-64")  # CVE-2023-0286 in the sample data
    zlib = package_builder("zlib", "1.3.1", "linux-64")
    icy = package_builder("icy", "1.0", "linux-64")
    hello, world, hello_new = (python_dists[k] for k in ("hello-wheel", "world-wheel", "hello-1.1-wheel"))
    tpdep, tpmain = r_packages["tpdep"], r_packages["tpmain"]

    def upload(p: Path, filetype: str = "") -> None:
        r = admin.post(f"/channels/{ch}/artifacts", files={"content": (p.name, p.read_bytes())},
                       data={"filetype": filetype} if filetype else {})
        assert r.status_code == 201, r.text

    assert admin.post("/channels", json={"name": ch}).status_code == 201
    for p, filetype in ((openssl, ""), (zlib, ""), (hello, "bdist_wheel"), (world, "bdist_wheel"),
                        (tpdep, "cran_source_package"), (tpmain, "cran_source_package")):
        upload(p, filetype)

    # Each index is read in several requests; while the channel changes they may see two publications,
    # so a disagreement is None (the waits below read again) rather than a failure.

    def conda() -> set[str] | None:
        """Every file name conda or rattler is offered, in every form of the index."""
        plain = httpx.get(f"{base}/linux-64/repodata.json").json()
        names = {*plain["packages"], *plain["packages.conda"]}
        current = httpx.get(f"{base}/linux-64/current_repodata.json").json()
        index = msgpack.unpackb(dzst(httpx.get(f"{base}/linux-64/repodata_shards.msgpack.zst").content))
        sharded: set[str] = set()
        for digest in index["shards"].values():
            shard = msgpack.unpackb(dzst(httpx.get(f"{base}/linux-64/shards/{digest.hex()}.msgpack.zst").content))
            sharded |= {*shard["packages"], *shard["packages.conda"]}
        same = (json.loads(dzst(httpx.get(f"{base}/linux-64/repodata.json.zst").content)) == plain
                and {*current["packages"], *current["packages.conda"]} == names == sharded)
        return names if same else None

    def simple() -> set[str] | None:
        """Every file pip is offered, from the PEP 503 pages and the PEP 691 JSON."""
        root = httpx.get(f"{base}/simple/")
        assert root.status_code == 200
        files: set[str] = set()
        for project in re.findall(r'<a href="[^"]*"[^>]*>([^<]+)</a>', root.text):
            page = httpx.get(f"{base}/simple/{project}/")
            found = set(re.findall(r'<a href="[^"]*"[^>]*>([^<]+)</a>', page.text))
            as_json = httpx.get(f"{base}/simple/{project}/",
                                headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
            if page.status_code != 200 or {f["filename"] for f in as_json.get("files", ())} != found:
                return None
            files |= found
        return files

    def packages() -> set[str]:
        r = httpx.get(f"{base}/src/contrib/PACKAGES")
        assert r.status_code == 200
        return set(re.findall(r"^Package: (\S+)$", r.text, re.M))

    everything = ({openssl.name, zlib.name}, {hello.name, world.name}, {"tpdep", "tpmain"})
    assert (conda(), simple(), packages()) == everything

    r = admin.put(f"/channels/{ch}", json={"filters": {"exclude_non_curated_cve": True}, "frozen": True})
    assert r.status_code == 200, r.text
    upload(icy)  # held: the frozen indexes do not publish it
    upload(hello_new, "bdist_wheel")
    assert (conda(), simple(), packages()) == everything

    # The CVE data arrives (another process): openssl, pyhello (both versions) and tpmain break the
    # channel's filters.
    osv = tmp_path / "advisories.json"
    osv.write_text(json.dumps([_advisory("CVE-2099-1001", "PyPI", "pyhello"),
                               _advisory("CVE-2099-1002", "CRAN", "tpmain")]))
    imported = subprocess.run([sys.executable, "-m", "taipan.admin.main", "cve", "import", str(DATA), str(osv)],
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, "TAIPAN_HOME": str(server.home)})
    assert imported.returncode == 0, imported.stderr
    withheld = ({zlib.name}, {world.name}, {"tpdep"})
    wait_for(lambda: (conda(), simple(), packages()) == withheld, "the frozen indexes still list withheld files")
    for path in (f"linux-64/{openssl.name}", f"simple/pyhello/{hello.name}", f"src/contrib/{tpmain.name}"):
        assert httpx.get(f"{base}/{path}").status_code == 404, path

    # Cleared: the files the channel had when frozen come back; pyhello 1.1, restored too, stays held.
    for cve in ("CVE-2023-0286", "CVE-2099-1001", "CVE-2099-1002"):
        r = admin.put(f"/cves/{cve}", json={"status": "cleared", "note": "not affected"})
        assert r.status_code == 200, r.text
    wait_for(lambda: (conda(), simple(), packages()) == everything, "the restored files are not listed again")
    files = admin.get(f"/channels/{ch}/artifacts/python/pyhello/files").json()["items"]
    assert {(f["version"], f["cve_status"]) for f in files} == {("1.0", "cleared"), ("1.1", "cleared")}

    # Unfrozen: what was uploaded meanwhile is published.
    assert admin.put(f"/channels/{ch}", json={"frozen": False}).status_code == 200
    assert (conda(), simple(), packages()) == ({openssl.name, zlib.name, icy.name},
                                                {hello.name, hello_new.name, world.name}, {"tpdep", "tpmain"})
    admin.close()
