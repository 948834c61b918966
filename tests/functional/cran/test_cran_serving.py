"""R packages over HTTP: uploads through each protocol (the documented curl form post, the
conda-repo-cli endpoint), every refusal, CRAN-like serving (PACKAGES, Archive, binary trees,
conditional requests, credentials), and the family in listings, search, bulk actions and the UI."""

from __future__ import annotations

import gzip
import hashlib
import io
import subprocess
import tarfile
import time
import uuid
import zipfile
from pathlib import Path

import httpx

from taipan.domain.cran import parse_dcf


def _channel(server, privacy: str = "public") -> str:
    name = f"r-{uuid.uuid4().hex[:8]}"
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": name, "privacy": privacy}).raise_for_status()
    return name


def curl_upload(server, channel: str, path: Path, token: str, filetype: str = "cran_source_package") -> tuple[int, str]:
    """Anaconda Server's documented R upload, literally: curl -F filetype=... -F content=@FILE."""
    proc = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-F", f"filetype={filetype}",
                           "-F", f"content=@{path}", f"{server.url}/api/repo/{channel}", "-H", f"X-Auth: {token}"],
                          capture_output=True, text=True, timeout=60, check=True)
    body, _, status = proc.stdout.rpartition("\n")
    return int(status), body


def packages(server, channel: str, tree: str = "src/contrib", **kw) -> dict[str, dict[str, str]]:
    r = httpx.get(f"{server.url}/api/repo/{channel}/{tree}/PACKAGES", **kw)
    assert r.status_code == 200, r.text
    return {rec["Package"]: rec for rec in parse_dcf(r.content)}


def test_uploads_and_cran_like_serving(taipan_server, r_packages):
    token = taipan_server.admin_token()
    ch = _channel(taipan_server)
    base = f"{taipan_server.url}/api/repo/{ch}"
    status, body = curl_upload(taipan_server, ch, r_packages["tpdep"], token)
    assert status == 201 and '"ckey":"src/contrib/tpdep_1.0.tar.gz"' in body.replace(" ", "")
    with taipan_server.client(token) as c:
        # the conda-repo-cli endpoint, type detected from the content
        p = r_packages["tpmain-0.9"]
        r = c.post(f"/channels/{ch}/artifacts", files={"content": (p.name, p.read_bytes())},
                   data={"size": str(p.stat().st_size)})
        assert r.status_code == 201, r.text
        assert (r.json()["family"], r.json()["type"], r.json()["subdir"]) == \
            ("cran", "cran_source_package", "src/contrib")
    first = httpx.get(f"{base}/src/contrib/PACKAGES")
    assert packages(taipan_server, ch)["tpmain"]["Version"] == "0.9"
    p = r_packages["tpmain"]
    r = httpx.post(f"{base}/", files={"content": (p.name, p.read_bytes())}, data={"filetype": "cran"},
                   auth=(token, "x-auth-token"))
    assert r.status_code == 201, r.text
    again = httpx.post(f"{base}/", files={"content": (p.name, p.read_bytes())}, data={"filetype": "cran"},
                       headers={"X-Auth": token})
    assert again.status_code == 409 and again.json()["code"] == "file_exists"

    # PACKAGES: rebuilt on change, newest version only, with R's fields and digests
    index = packages(taipan_server, ch)
    assert set(index) == {"tpdep", "tpmain"}
    main = index["tpmain"]
    data = p.read_bytes()
    assert main["Version"] == "1.0" and main["Imports"] == "tpdep" and main["Depends"] == "R (>= 3.5)"
    assert main["MD5sum"] == hashlib.md5(data).hexdigest() and main["SHA256"] == hashlib.sha256(data).hexdigest()
    assert main["License"] == "MIT + file LICENSE" and main["NeedsCompilation"] == "no"
    r = httpx.get(f"{base}/src/contrib/PACKAGES")
    assert r.headers["etag"] != first.headers["etag"]
    gz = httpx.get(f"{base}/src/contrib/PACKAGES.gz")
    assert gz.status_code == 200 and gzip.decompress(gz.content) == r.content
    rds = httpx.get(f"{base}/src/contrib/PACKAGES.rds")  # R's serialization: R reads it in test_cran_r_client
    assert rds.status_code == 200 and gzip.decompress(rds.content).startswith(b"X\n")
    assert rds.headers["etag"] != gz.headers["etag"]
    archive = httpx.get(f"{base}/src/contrib/Meta/archive.rds")
    assert archive.status_code == 200 and b"tpmain/tpmain_0.9.tar.gz" in gzip.decompress(archive.content)
    cond = httpx.get(f"{base}/src/contrib/PACKAGES", headers={"If-None-Match": r.headers["etag"]})
    assert cond.status_code == 304 and cond.content == b""
    head = httpx.head(f"{base}/src/contrib/PACKAGES.gz")
    assert head.status_code == 200 and head.headers["etag"] == gz.headers["etag"] and head.content == b""

    # the newest version in src/contrib, older ones in src/contrib/Archive/<pkg>/, as on CRAN
    assert httpx.get(f"{base}/src/contrib/tpmain_1.0.tar.gz").content == data
    assert httpx.get(f"{base}/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz").content == \
        r_packages["tpmain-0.9"].read_bytes()
    for gone in ("src/contrib/tpmain_0.9.tar.gz", "src/contrib/Archive/tpmain/tpmain_1.0.tar.gz",
                 "src/contrib/Archive/tpdep/tpmain_0.9.tar.gz", "src/contrib/nothing_1.0.tar.gz",
                 "src/contrib/Archive/tpmain/../PACKAGES", "src/contrib/README", "src/other/PACKAGES"):
        assert httpx.get(f"{base}/{gone}").status_code == 404, gone
    sbom = httpx.get(f"{base}/src/contrib/tpmain_1.0.tar.gz", params={"sbom": "download"})
    assert sbom.status_code == 200 and "pkg:cran/tpmain@1.0" in sbom.text and "pkg:cran/tpdep" in sbom.text
    assert "tpmain/DESCRIPTION" in sbom.text and "spdxVersion" in sbom.json()
    cdx = httpx.get(f"{base}/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz",
                    params={"sbom": "download", "format": "cyclonedx"})
    assert cdx.status_code == 200 and cdx.json()["bomFormat"] == "CycloneDX" and "pkg:cran/tpmain@0.9" in cdx.text
    ranged = httpx.get(f"{base}/src/contrib/tpmain_1.0.tar.gz", headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.content == data[:10]

    # removing the newest version brings the archived one back to src/contrib
    with taipan_server.client(token) as c:
        r = c.put(f"/channels/{ch}/artifacts/bulk", json={"action": "delete", "items": [
            {"name": "tpmain", "family": "cran", "ckey": "src/contrib/tpmain_1.0.tar.gz"}]})
        assert r.status_code == 202, r.text
    assert packages(taipan_server, ch)["tpmain"]["Version"] == "0.9"
    assert httpx.get(f"{base}/src/contrib/tpmain_0.9.tar.gz").status_code == 200
    assert httpx.get(f"{base}/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz").status_code == 404
    assert b"tpmain/" not in gzip.decompress(httpx.get(f"{base}/src/contrib/Meta/archive.rds").content)


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _desc(name: str = "bad", version: str = "1.0", extra: str = "") -> bytes:
    return f"Package: {name}\nVersion: {version}\nLicense: MIT\n{extra}".encode()


def test_bad_uploads_get_a_clear_4xx_and_nothing_is_stored(server_factory, tmp_path):
    server = server_factory({"TAIPAN_SERVER__MAX_UPLOAD_SIZE": "20000"})
    token = server.admin_token()
    ch = _channel(server)
    ok = {"bad/DESCRIPTION": _desc(), "bad/NAMESPACE": b""}
    notgz = tmp_path / "plain" / "bad_1.0.tar.gz"
    notgz.parent.mkdir()
    notgz.write_bytes(b"Package: bad\n")
    dup = tmp_path / "dup" / "bad_1.0.tar.gz"
    dup.parent.mkdir()
    with tarfile.open(dup, "w:gz") as tar:
        for name, data in [*ok.items(), ("bad/NAMESPACE", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    big = tmp_path / "big" / "bad_1.0.tar.gz"
    big.parent.mkdir()
    big.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 100)
    cases = [
        (notgz, 400, "not_gzip"),
        (_tar(tmp_path / "nodesc" / "bad_1.0.tar.gz", {"bad/NAMESPACE": b""}), 400, "missing_description"),
        (_tar(tmp_path / "mismatch" / "bad_1.0.tar.gz", {**ok, "bad/DESCRIPTION": _desc(version="2.0")}), 400,
         "filename_mismatch"),
        (_tar(tmp_path / "ver" / "bad_1.0a.tar.gz", {**ok, "bad/DESCRIPTION": _desc(version="1.0a")}), 400,
         "invalid_version"),
        (_tar(tmp_path / "abs" / "bad_1.0.tar.gz", {**ok, "/etc/cron.d/x": b""}), 400, "unsafe_archive"),
        (_tar(tmp_path / "dots" / "bad_1.0.tar.gz", {**ok, "bad/../../x": b""}), 400, "unsafe_archive"),
        (dup, 400, "unsafe_archive"),
        (_tar(tmp_path / "desc" / "bad_1.0.tar.gz", {**ok, "bad/DESCRIPTION": b"Package bad\n"}), 400,
         "invalid_description"),
        (big, 413, "upload_too_large"),
    ]
    for path, status, code in cases:
        got, body = curl_upload(server, ch, path, token)
        assert got == status and f'"code":"{code}"' in body.replace(" ", ""), (path, got, body)
        assert '"hint":' in body
    # an R package sent as another family's type is called what it is
    good = _tar(tmp_path / "good" / "bad_1.0.tar.gz", ok)
    got, body = curl_upload(server, ch, good, token, filetype="conda1")
    assert got == 400 and "wrong_filetype" in body
    with server.client(token) as c:
        assert c.get(f"/channels/{ch}/artifacts").json()["total_count"] == 0
        assert not any(e["event_type"] == "artifact_uploaded" for e in c.get(f"/channels/{ch}/history").json()["items"])
    assert httpx.get(f"{server.url}/api/repo/{ch}/src/contrib/PACKAGES").content == b""


WIN_BUILT = "Built: R 4.3.1; x86_64-w64-mingw32; 2023-07-01 12:00:00 UTC; windows\n"
MAC_BUILT = "Built: R 4.3.1; aarch64-apple-darwin20; 2023-07-01 12:00:00 UTC; unix\n"


def test_binary_packages_are_served_in_their_trees(taipan_server, tmp_path):
    token = taipan_server.admin_token()
    ch = _channel(taipan_server)
    base = f"{taipan_server.url}/api/repo/{ch}"
    win = tmp_path / "binpkg_1.0.zip"
    with zipfile.ZipFile(win, "w") as zf:
        zf.writestr("binpkg/DESCRIPTION", _desc("binpkg", extra=WIN_BUILT))
        zf.writestr("binpkg/NAMESPACE", "")
    mac = _tar(tmp_path / "binpkg_1.0.tgz", {"binpkg/DESCRIPTION": _desc("binpkg", extra=MAC_BUILT),
                                             "binpkg/NAMESPACE": b""})
    with taipan_server.client(token) as c:
        r = c.post(f"/channels/{ch}/artifacts", files={"content": (win.name, win.read_bytes())},
                   data={"filetype": "cran_binary_package"})
        assert r.status_code == 201 and r.json()["ckey"] == "bin/windows/contrib/4.3/binpkg_1.0.zip", r.text
        r = c.post(f"/channels/{ch}/artifacts", files={"content": (mac.name, mac.read_bytes())},
                   data={"subdir": "bin/macosx/big-sur-arm64/contrib/4.2"})
        assert r.status_code == 400 and r.json()["code"] == "invalid_subdir"
        r = c.post(f"/channels/{ch}/artifacts", files={"content": (mac.name, mac.read_bytes())},
                   data={"subdir": "bin/macosx/sonoma-arm64/contrib/4.3"})
        assert r.status_code == 201 and r.json()["subdir"] == "bin/macosx/sonoma-arm64/contrib/4.3", r.text
    win_index = packages(taipan_server, ch, "bin/windows/contrib/4.3")
    assert win_index["binpkg"]["Built"].startswith("R 4.3.1; x86_64-w64-mingw32")
    assert set(packages(taipan_server, ch, "bin/macosx/sonoma-arm64/contrib/4.3")) == {"binpkg"}
    assert packages(taipan_server, ch) == {} and packages(taipan_server, ch, "bin/windows/contrib/4.2") == {}
    assert httpx.get(f"{base}/bin/windows/contrib/4.3/binpkg_1.0.zip").content == win.read_bytes()
    assert httpx.get(f"{base}/bin/windows/contrib/4.2/binpkg_1.0.zip").status_code == 404
    assert httpx.get(f"{base}/bin/windows/contrib/four/PACKAGES").status_code == 404
    # a subchannel is a CRAN-like repository of its own
    with taipan_server.client(token) as c:
        c.post(f"/channels/{ch}/subchannels", json={"name": "lab"}).raise_for_status()
    r = httpx.post(f"{base}/lab/", files={"content": (win.name, win.read_bytes())}, headers={"X-Auth": token})
    assert r.status_code == 201, r.text
    assert r.json()["url"].endswith(f"/api/repo/{ch}/lab/bin/windows/contrib/4.3/binpkg_1.0.zip")
    assert set(packages(taipan_server, f"{ch}/lab", "bin/windows/contrib/4.3")) == {"binpkg"}
    assert httpx.get(r.json()["url"]).content == win.read_bytes()


def test_private_channels_want_a_token_in_the_path_or_in_basic_auth(taipan_server, r_packages):
    token = taipan_server.admin_token()
    ch = _channel(taipan_server, privacy="private")
    assert curl_upload(taipan_server, ch, r_packages["tpdep"], token)[0] == 201
    url = f"{taipan_server.url}/api/repo/{ch}/src/contrib/PACKAGES"
    anon = httpx.get(url)
    assert anon.status_code == 401 and anon.headers["www-authenticate"].lower().startswith("basic")
    assert token not in anon.text
    assert httpx.get(url, auth=("wrong", "x-auth-token")).status_code == 401
    assert set(packages(taipan_server, ch, auth=(token, "x-auth-token"))) == {"tpdep"}
    r = httpx.get(f"{taipan_server.url}/api/repo/t/{token}/{ch}/src/contrib/PACKAGES.gz")
    assert r.status_code == 200 and b"Package: tpdep" in gzip.decompress(r.content)
    pkg = httpx.get(f"{taipan_server.url}/api/repo/t/{token}/{ch}/src/contrib/tpdep_1.0.tar.gz")
    assert pkg.status_code == 200 and pkg.content == r_packages["tpdep"].read_bytes()
    assert httpx.get(f"{taipan_server.url}/api/repo/{ch}/src/contrib/tpdep_1.0.tar.gz").status_code == 401


def test_the_family_in_listings_search_bulk_history_downloads_and_ui(taipan_server, r_packages):
    token = taipan_server.admin_token()
    ch, other = _channel(taipan_server), _channel(taipan_server)
    for key in ("tpdep", "tpmain-0.9", "tpmain"):
        assert curl_upload(taipan_server, ch, r_packages[key], token)[0] == 201
    with taipan_server.client(token) as c:
        items = c.get(f"/channels/{ch}/artifacts").json()["items"]
        main = next(i for i in items if i["name"] == "tpmain")
        assert main["family"] == "cran" and main["file_count"] == 2
        assert main["metadata"]["version"] == "1.0" and main["metadata"]["summary"] == "The tpmain Test Package"
        assert main["metadata"]["install_cmd"].startswith('install.packages("tpmain"')
        files = c.get(f"/channels/{ch}/artifacts/cran/tpmain/files").json()["items"]
        assert [f["version"] for f in files] == ["0.9", "1.0"] and files[0]["type"] == "cran_source_package"
        assert files[1]["metadata"]["DESCRIPTION"]["Maintainer"] == "Test Author <t@example.invalid>"
        assert files[1]["url"].endswith(f"/api/repo/{ch}/src/contrib/tpmain_1.0.tar.gz")
        found = c.get("/artifacts", params={"q": "tpmain", "family": "cran"}).json()["items"]
        assert any(i["channel"] == ch for i in found) and all(i["family"] == "cran" for i in found)
        assert not [i for i in c.get("/artifacts", params={"q": "tpmain", "family": "conda"}).json()["items"]
                    if i["channel"] == ch]
        r = c.put(f"/channels/{ch}/artifacts/bulk", json={"action": "copy", "target_channel": other,
                                                           "items": [{"name": "tpdep", "family": "cran"}]})
        assert r.status_code == 202, r.text
        r = c.put(f"/channels/{ch}/artifacts/bulk", json={"action": "move", "target_channel": other,
                                                           "items": [{"name": "tpmain", "family": "cran"}]})
        assert r.status_code == 202, r.text
        events = [e["event_type"] for e in c.get(f"/channels/{ch}/history").json()["items"]]
        assert events.count("artifact_uploaded") == 3
    assert set(packages(taipan_server, ch)) == {"tpdep"}
    assert {k: v["Version"] for k, v in packages(taipan_server, other).items()} == {"tpdep": "1.0", "tpmain": "1.0"}
    assert httpx.get(f"{taipan_server.url}/api/repo/{other}/src/contrib/Archive/tpmain/tpmain_0.9.tar.gz"
                     ).status_code == 200
    deadline = time.monotonic() + 20
    with taipan_server.client(token) as c:
        while True:
            f = c.get(f"/channels/{other}/artifacts/cran/tpmain/files").json()["items"]
            if [x["download_count"] for x in f] == [1, 0] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert [x["download_count"] for x in f] == [1, 0]  # the Archive download above counted
    page = httpx.get(f"{taipan_server.url}/ui/channels/{other}/packages/tpmain", params={"family": "cran"})
    assert page.status_code == 200
    assert (f'install.packages(&#34;tpmain&#34;, repos = &#34;{taipan_server.url}/api/repo/{other}&#34;)'
            in page.text or f'install.packages("tpmain", repos = "{taipan_server.url}/api/repo/{other}")' in page.text)
    assert "The tpmain Test Package" in page.text
    assert "install.packages(" in httpx.get(f"{taipan_server.url}/ui/channels/{other}").text
