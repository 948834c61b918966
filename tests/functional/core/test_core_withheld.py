"""A file withheld by its channel's CVE filters cannot be downloaded: its URL answers the 404 of a file
the channel does not have (GET, HEAD, Range; anonymous or admin; the in-memory fast path included, which
had the file remembered), also in a frozen channel whose index is not republished; its SBOM answers the
same 404 (by its URL and by its bare file name); once its CVE is cleared it downloads again."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

DATA = Path(__file__).parents[2] / "data" / "cve"


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
    # A frozen channel's index stays as it was; the download goes all the same.
    wait_for(lambda: httpx.get(url("kept", openssl)).status_code == 404, "openssl still downloads from kept")
    assert openssl.name in listed("kept")
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
    wait_for(lambda: openssl.name in listed("guarded"), "openssl did not come back to guarded's index")
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
