"""Uploads of wheels and sdists: twine against a live server with every credential form, duplicates
that twine's --skip-existing understands, and every refusal (clear 4xx, nothing stored)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest
from pyclients import twine

from pydists import build_sdist, build_wheel, python_metadata


def files_of(api: httpx.Client, channel: str, project: str) -> list[str]:
    r = api.get(f"/channels/{channel}/artifacts/python/{project}/files")
    return [] if r.status_code == 404 else sorted(f["name"] for f in r.json()["items"])


def test_twine_uploads_with_every_credential_form(taipan_server, api, pychannel, token, clean_env,
                                                  tmp_path: Path) -> None:
    ch = pychannel()
    api.post(f"/channels/{ch}/subchannels", json={"name": "stable"}).raise_for_status()
    d = tmp_path / "dists"
    base = f"{taipan_server.url}/api/repo"
    # Anaconda Server's documented form: the token as user name, x-auth-token as password; no slash.
    twine(clean_env, f"{base}/{ch}", [build_wheel(d, "credforms", "1.0")], token, "x-auth-token")
    # PyPI's: __token__ and the token as password; with a trailing slash.
    twine(clean_env, f"{base}/{ch}/", [build_sdist(d, "credforms", "1.0")], "__token__", token)
    # A user name and account password.
    twine(clean_env, f"{base}/{ch}", [build_wheel(d, "credforms", "1.1")], "admin", taipan_server.admin_password)
    # The token in the path wins over whatever basic credentials twine sends.
    twine(clean_env, f"{base}/t/{token}/{ch}", [build_wheel(d, "credforms", "1.2")], "someone", "anything")
    # A subchannel.
    twine(clean_env, f"{base}/{ch}/stable", [build_wheel(d, "credforms", "2.0")], token, "x-auth-token")
    # X-Auth and Bearer on the same endpoint, as the form post clients send it.
    for i, headers in enumerate(({"X-Auth": token}, {"Authorization": f"Bearer {token}"})):
        wheel = build_wheel(d, "credforms", f"1.{3 + i}")
        r = httpx.post(f"{base}/{ch}/", headers=headers, files={"content": (wheel.name, wheel.read_bytes())},
                       data={":action": "file_upload", "filetype": "bdist_wheel"})
        assert r.status_code == 200, r.text
        assert r.json()["family"] == "python" and r.json()["type"] == "bdist_wheel"
    assert files_of(api, ch, "credforms") == sorted(
        ["credforms-1.0-py3-none-any.whl", "credforms-1.0.tar.gz", "credforms-1.1-py3-none-any.whl",
         "credforms-1.2-py3-none-any.whl", "credforms-1.3-py3-none-any.whl", "credforms-1.4-py3-none-any.whl"])
    assert files_of(api, f"{ch}/subchannels/stable", "credforms") == ["credforms-2.0-py3-none-any.whl"]
    # Wrong credentials are refused, and nothing is stored.
    proc = twine(clean_env, f"{base}/{ch}", [build_wheel(d, "credforms", "9.0")], "__token__", "nope", rc=None)
    assert proc.returncode != 0 and "401" in proc.stdout + proc.stderr
    assert "credforms-9.0-py3-none-any.whl" not in files_of(api, ch, "credforms")


def test_duplicate_is_409_and_twine_skip_existing_skips_it(taipan_server, api, pychannel, token, clean_env,
                                                            tmp_path: Path) -> None:
    ch = pychannel()
    wheel = build_wheel(tmp_path, "dupe", "1.0")
    url = f"{taipan_server.url}/api/repo/{ch}"
    twine(clean_env, url, [wheel], token, "x-auth-token")
    proc = twine(clean_env, url, [wheel], token, "x-auth-token", rc=None)
    assert proc.returncode != 0 and "409" in proc.stdout + proc.stderr
    # twine >= 7 allows --skip-existing only for PyPI URLs; its test of an answer still decides
    # what a repository's "already exists" looks like: ask it about our real answer.
    import requests
    from twine.commands.upload import skip_upload

    r = requests.post(url, headers={"X-Auth": token}, files={"content": (wheel.name, wheel.read_bytes())},
                      data={":action": "file_upload", "filetype": "bdist_wheel"}, timeout=30)
    assert r.status_code == 409 and r.json()["code"] == "file_exists"
    assert skip_upload(r, True, None) and not skip_upload(r, False, None)  # type: ignore[arg-type]
    assert files_of(api, ch, "dupe") == ["dupe-1.0-py3-none-any.whl"]


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _tgz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _post(base: str, ch: str, token: str, path: Path, **data: str) -> httpx.Response:
    return httpx.post(f"{base}/api/repo/{ch}", headers={"X-Auth": token},
                      files={"content": (path.name, path.read_bytes())},
                      data={":action": "file_upload", "filetype": "bdist_wheel", **data})


@pytest.mark.parametrize("case", [
    "wheel_name", "sdist_name", "unreadable", "no_metadata", "bad_metadata", "name_mismatch", "version_mismatch",
    "sha256", "md5", "unsafe_zip", "unsafe_tar", "not_utf8",
])
def test_bad_uploads_are_refused_with_a_hint(taipan_server, api, pychannel, token, case: str,
                                            tmp_path: Path) -> None:
    ch = pychannel("bad")
    meta = python_metadata("badpkg", "1.0").encode()
    info = "badpkg-1.0.dist-info"
    extra: dict[str, str] = {}
    expected = {"wheel_name": "invalid_filename", "sdist_name": "invalid_filename", "unreadable": "invalid_archive",
                "no_metadata": "missing_metadata", "bad_metadata": "invalid_metadata",
                "name_mismatch": "filename_mismatch", "version_mismatch": "filename_mismatch",
                "sha256": "digest_mismatch", "md5": "digest_mismatch", "unsafe_zip": "unsafe_archive",
                "unsafe_tar": "unsafe_archive", "not_utf8": "invalid_metadata"}[case]
    if case == "wheel_name":
        path = _zip(tmp_path / "badpkg-1.0.whl", {f"{info}/METADATA": meta})
    elif case == "sdist_name":
        path = _tgz(tmp_path / "badpkg.tar.gz", {"badpkg/PKG-INFO": meta})
    elif case == "unreadable":
        path = tmp_path / "badpkg-1.0-py3-none-any.whl"
        path.write_bytes(b"PK\x03\x04 this is not really a zip")
    elif case == "no_metadata":
        path = _zip(tmp_path / "badpkg-1.0-py3-none-any.whl", {"badpkg/__init__.py": b""})
    elif case == "bad_metadata":
        path = _zip(tmp_path / "badpkg-1.0-py3-none-any.whl", {f"{info}/METADATA": b"Metadata-Version: 2.1\n"})
    elif case == "name_mismatch":
        path = _zip(tmp_path / "badpkg-1.0-py3-none-any.whl",
                    {f"{info}/METADATA": python_metadata("otherpkg", "1.0").encode()})
    elif case == "version_mismatch":
        path = _tgz(tmp_path / "badpkg-1.0.tar.gz", {"badpkg-1.0/PKG-INFO": python_metadata("badpkg", "2.0").encode()})
    elif case in ("sha256", "md5"):
        path = build_wheel(tmp_path, "badpkg", "1.0")
        extra = {f"{case}_digest": hashlib.new(case, b"other bytes").hexdigest()}
    elif case == "unsafe_zip":
        path = _zip(tmp_path / "badpkg-1.0-py3-none-any.whl", {f"{info}/METADATA": meta, "../evil.py": b""})
    elif case == "unsafe_tar":
        path = _tgz(tmp_path / "badpkg-1.0.tar.gz", {"badpkg-1.0/PKG-INFO": meta, "/etc/evil": b""})
    else:
        path = _zip(tmp_path / "badpkg-1.0-py3-none-any.whl",
                    {f"{info}/METADATA": b"Metadata-Version: 2.1\nName: badpkg\nVersion: 1.0\nSummary: \xff\xfe\n"})
    r = _post(taipan_server.url, ch, token, path, **extra)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == expected, body
    assert body["message"] and body["hint"]
    assert files_of(api, ch, "badpkg") == []


def test_matching_digests_and_upload_by_the_channels_api(taipan_server, api, pychannel, token,
                                                         tmp_path: Path) -> None:
    ch = pychannel()
    wheel = build_wheel(tmp_path, "digests", "1.0")
    data = wheel.read_bytes()
    r = _post(taipan_server.url, ch, token, wheel, sha256_digest=hashlib.sha256(data).hexdigest(),
              md5_digest=hashlib.md5(data).hexdigest(), name="Digests", version="1.0.0")
    assert r.status_code == 200, r.text
    # conda-repo-cli's endpoint with its `filetype` values, and an sdist told apart from an R package.
    sdist = build_sdist(tmp_path, "digests", "1.0")
    r = api.post(f"/channels/{ch}/artifacts", files={"content": (sdist.name, sdist.read_bytes())},
                 data={"filetype": "sdist"})
    assert r.status_code == 201, r.text
    f = r.json()
    assert (f["family"], f["type"], f["package"], f["version"]) == ("python", "sdist", "digests", "1.0")
    assert f["ckey"] == "simple/digests/digests-1.0.tar.gz"
    assert f["url"].endswith(f"/api/repo/{ch}/simple/digests/digests-1.0.tar.gz")
