"""Every bad input gets a clear error with a code and a hint, and nothing stored changes."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from pathlib import Path

import httpx
import pytest


def err(r: httpx.Response, status: int, code: str | None = None) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["message"] and body["hint"], body
    if code:
        assert body["code"] == code, body
    return body


def post_file(c: httpx.Client, channel: str, name: str, data: bytes, **form: str) -> httpx.Response:
    return c.post(f"/channels/{channel}/artifacts", files={"content": (name, data)},
                  data={"filetype": "conda1", **form})


@pytest.fixture
def chan(taipan_server, conda_packages):
    """A channel holding hello; yields (client, name) and checks at the end that it is unchanged."""
    name = f"bad-{uuid.uuid4().hex[:8]}"
    c = taipan_server.client(taipan_server.admin_token())
    c.post("/channels", json={"name": name}).raise_for_status()
    post_file(c, name, conda_packages["hello"].name, conda_packages["hello"].read_bytes()).raise_for_status()
    before = httpx.get(f"{taipan_server.api}/repo/{name}/noarch/repodata.json").content
    yield c, name
    after = httpx.get(f"{taipan_server.api}/repo/{name}/noarch/repodata.json").content
    assert after == before, "a rejected upload changed the channel"
    files = c.get(f"/channels/{name}/artifacts").json()
    assert files["total_count"] == 1
    c.close()


def make_tar_bz2(index: dict, about: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        for member, content in (("info/index.json", index), ("info/about.json", about or {})):
            data = json.dumps(content).encode()
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_corrupt_archive(chan):
    c, name = chan
    err(post_file(c, name, "junk-1.0-0.conda", b"PK\x03\x04 this is not a zip"), 400, "invalid_package")
    err(post_file(c, name, "junk-1.0-0.tar.bz2", b"BZh9 not bzip2 at all"), 400, "invalid_package")
    err(post_file(c, name, "junk-1.0-0.conda", b"plain text"), 400, "invalid_package")


def test_truncated_archive(chan, conda_packages):
    c, name = chan
    for key in ("hello-1.1", "world"):
        data = conda_packages[key].read_bytes()
        err(post_file(c, name, conda_packages[key].name, data[: len(data) // 2]), 400, "invalid_package")


def test_declared_size_mismatch(chan, conda_packages):
    c, name = chan
    data = conda_packages["hello-1.1"].read_bytes()
    err(post_file(c, name, conda_packages["hello-1.1"].name, data, size=str(len(data) + 5)), 400,
        "size_mismatch")


def test_file_name_must_match_index_json(chan, conda_packages):
    c, name = chan
    data = conda_packages["hello-1.1"].read_bytes()
    body = err(post_file(c, name, "hello-9.9-0.conda", data), 400, "filename_mismatch")
    assert "hello-1.1-0.conda" in body["hint"]
    # the archive format must match the extension too
    err(post_file(c, name, "hello-1.1-0.tar.bz2", data), 400, "filename_mismatch")
    err(post_file(c, name, "hello.zip", data), 400, "invalid_filename")


def test_unknown_subdir(chan):
    c, name = chan
    data = make_tar_bz2({"name": "odd", "version": "1.0", "build": "0", "build_number": 0,
                         "subdir": "plan9-64", "depends": []})
    err(post_file(c, name, "odd-1.0-0.tar.bz2", data), 400, "unknown_subdir")
    data = make_tar_bz2({"name": "odd", "version": "1.0", "build": "0"})  # no subdir, not noarch
    err(post_file(c, name, "odd-1.0-0.tar.bz2", data), 400, "unknown_subdir")


def test_missing_index_json(chan):
    c, name = chan
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        info = tarfile.TarInfo("info/other.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    err(post_file(c, name, "odd-1.0-0.tar.bz2", buf.getvalue()), 400, "invalid_package")


def test_path_traversal_in_names(chan, conda_packages, taipan_server):
    c, name = chan
    data = conda_packages["hello-1.1"].read_bytes()
    for bad in ("../hello-1.1-0.conda", "noarch/../../hello-1.1-0.conda", "..\\hello-1.1-0.conda",
                "/etc/hello-1.1-0.conda", ".hello-1.1-0.conda"):
        r = post_file(c, name, bad, data)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["code"] == "invalid_filename"
    # traversal in serving URLs never escapes the channel
    for path in ("noarch/..%2F..%2Fetc%2Fpasswd", "noarch/../../../etc/passwd", "..%2F..%2Fetc/passwd"):
        r = httpx.get(f"{taipan_server.api}/repo/{name}/{path}")
        assert r.status_code in (400, 401, 404), (path, r.status_code)
        assert b"root:" not in r.content
    r = c.get("/channels/..%2Fetc/artifacts")
    assert r.status_code in (400, 404, 405)
    r = c.post("/channels/..%2Fetc/artifacts", files={"content": ("hello-1.1-0.conda", data)})
    assert r.status_code in (400, 404) and r.json()["code"] in ("invalid_channel_name", "not_found")


def test_duplicate_file_is_409(chan, conda_packages):
    c, name = chan
    err(post_file(c, name, conda_packages["hello"].name, conda_packages["hello"].read_bytes()), 409,
        "file_exists")


def test_unsupported_filetype(chan, conda_packages):
    c, name = chan
    r = c.post(f"/channels/{name}/artifacts", files={"content": ("x.bin", b"PK\x03\x04")},
               data={"filetype": "no_such_type"})
    err(r, 400, "unsupported_filetype")


def test_upload_over_the_size_limit(server_factory, conda_packages):
    server = server_factory({"TAIPAN_SERVER__MAX_UPLOAD_SIZE": "600"})
    with server.client(server.admin_token()) as c:
        c.post("/channels", json={"name": "small"}).raise_for_status()
        big = conda_packages["hello"].read_bytes() * 2
        assert len(big) > 600
        err(post_file(c, "small", conda_packages["hello"].name, big), 413, "upload_too_large")
        # also when the client sends no Content-Length (chunked): the limit holds while reading
        def chunks():
            yield big
        r = httpx.post(f"{server.api}/channels/small/artifacts", headers={"X-Auth": server.admin_token(),
                       "Content-Type": "multipart/form-data; boundary=XYZ"},
                       content=_chunked_multipart(conda_packages["hello"].name, big))
        assert r.status_code in (400, 413), r.text
        assert c.get("/channels/small/artifacts").json()["total_count"] == 0


def _chunked_multipart(filename: str, data: bytes):
    yield b"--XYZ\r\nContent-Disposition: form-data; name=\"content\"; filename=\"" + filename.encode() + b"\"\r\n"
    yield b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--XYZ--\r\n"


@pytest.mark.parametrize("bad", ["Upper", "1abc", "a b", "a.b", "x" * 65, "t", "a/b/c", "é"])
def test_invalid_channel_names(taipan_server, bad):
    with taipan_server.client(taipan_server.admin_token()) as c:
        r = c.post("/channels", json={"name": bad})
        err(r, 400, "invalid_channel_name")


def test_subchannel_cannot_be_named_like_a_subdir(taipan_server):
    name = f"subdirs-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        for bad in ("noarch", "linux-64", "osx-arm64"):
            err(c.post(f"/channels/{name}/subchannels", json={"name": bad}), 400, "invalid_channel_name")


def test_missing_invalid_expired_and_underscoped_tokens(taipan_server, conda_packages):
    api = taipan_server.api
    err(httpx.get(f"{api}/account"), 401, "authentication_required")
    err(httpx.get(f"{api}/account", headers={"X-Auth": "not-a-token"}), 401, "invalid_token")
    err(httpx.post(f"{api}/channels", json={"name": "nope"}), 401)
    session = taipan_server.login()
    bearer = {"Authorization": f"Bearer {session}"}
    # only download: cannot upload or create channels
    r = httpx.post(f"{api}/account/tokens", json={"name": "ro", "scopes": ["artifact:download"]},
                   headers=bearer)
    assert r.status_code == 200
    ro = r.json()["token"]
    err(httpx.post(f"{api}/channels", json={"name": "scoped-x"}, headers={"X-Auth": ro}), 403,
        "insufficient_scope")
    p = conda_packages["hello"]
    name = f"scoped-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name, "privacy": "private"}).raise_for_status()
    r = httpx.post(f"{api}/channels/{name}/artifacts", headers={"X-Auth": ro},
                   files={"content": (p.name, p.read_bytes())})
    err(r, 403, "insufficient_scope")
    # it can download from the private channel
    assert httpx.get(f"{api}/repo/t/{ro}/{name}/noarch/repodata.json").status_code == 200
    # a token without artifact:download cannot fetch packages
    r = httpx.post(f"{api}/account/tokens", json={"name": "view", "scopes": ["channel:view"]}, headers=bearer)
    view = r.json()["token"]
    err(httpx.get(f"{api}/repo/t/{view}/{name}/noarch/repodata.json"), 403, "insufficient_scope")
    # bad scope names and expiry dates are refused
    err(httpx.post(f"{api}/account/tokens", json={"name": "x", "scopes": ["root:all"]}, headers=bearer), 400,
        "invalid_scope")
    err(httpx.post(f"{api}/account/tokens", json={"name": "x", "expires_at": "2001-01-01"}, headers=bearer),
        400, "invalid_expiry")
    err(httpx.post(f"{api}/account/tokens", json={"name": "x", "expires_at": "tomorrow"}, headers=bearer),
        400, "invalid_expiry")


def test_expired_token(taipan_server, tmp_path: Path):
    """Expire a token in the database directly (time cannot be moved in a running server)."""
    import sqlite3

    session = taipan_server.login()
    r = httpx.post(f"{taipan_server.api}/account/tokens", json={"name": "soon"},
                   headers={"Authorization": f"Bearer {session}"})
    token, token_id = r.json()["token"], r.json()["id"]
    assert httpx.get(f"{taipan_server.api}/account", headers={"X-Auth": token}).status_code == 200
    with sqlite3.connect(taipan_server.home / "taipan.db") as db:
        db.execute("UPDATE tokens SET expires_at = '2020-01-01 00:00:00.000000+00:00' WHERE id = ?", (token_id,))
    err(httpx.get(f"{taipan_server.api}/account", headers={"X-Auth": token}), 401, "token_expired")
    time.sleep(5.1)  # past the serving layer's principal cache
    r = httpx.get(f"{taipan_server.api}/repo/t/{token}/admin/noarch/repodata.json")
    err(r, 401, "token_expired")


def test_wrong_password_and_throttling(server_factory):
    server = server_factory()
    api = server.api
    bad = {"username": "admin", "password": "wrong-password"}
    for _ in range(3):
        err(httpx.post(f"{api}/auth/login", json=bad), 401, "invalid_credentials")
    # from the fourth failure on, each attempt must wait: 1 s, then 2 s, ...
    r = httpx.post(f"{api}/auth/login", json=bad)
    body = err(r, 429, "login_throttled")
    assert r.headers["retry-after"] == "1" and "Wait" in body["hint"]
    time.sleep(1.1)
    err(httpx.post(f"{api}/auth/login", json=bad), 401, "invalid_credentials")
    r = httpx.post(f"{api}/auth/login", json={"username": "admin", "password": server.admin_password})
    err(r, 429, "login_throttled")  # even the right password waits out the delay
    assert r.headers["retry-after"] == "2"
    time.sleep(2.1)
    r = httpx.post(f"{api}/auth/login", json={"username": "admin", "password": server.admin_password})
    assert r.status_code == 200, r.text
    # success resets the counter
    err(httpx.post(f"{api}/auth/login", json=bad), 401, "invalid_credentials")
    # unknown users get the same answer as wrong passwords
    err(httpx.post(f"{api}/auth/login", json={"username": "ghost", "password": "x" * 10}), 401,
        "invalid_credentials")
