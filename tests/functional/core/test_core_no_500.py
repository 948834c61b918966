"""Inputs that used to crash the server (500) get a clear 4xx, and a failed request stores nothing."""

from __future__ import annotations

import bz2
import io
import json
import tarfile
import uuid
import zipfile

import httpx
import pytest
import zstandard

HUGE = [str(2**63), str(2**64), "9" * 30, "-1"]


@pytest.fixture(scope="module")
def listed(taipan_server, conda_packages):
    name = f"pages-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        c.post(f"/channels/{name}/subchannels", json={"name": "sub"}).raise_for_status()
        for ch in (name, f"{name}/sub"):
            p = conda_packages["hello"]
            c.post(f"/channels/{ch}/artifacts", files={"content": (p.name, p.read_bytes())}).raise_for_status()
    return name


def paginated(name: str) -> list[str]:
    sub = f"{name}/subchannels/sub"
    return [f"/channels/{name}/history", f"/channels/{name}/artifacts", f"/channels/{sub}/history",
            f"/channels/{sub}/artifacts", f"/channels/{name}/artifacts/conda/hello/files",
            f"/channels/{sub}/artifacts/conda/hello/files", "/artifacts"]


@pytest.mark.parametrize("param", ["offset", "limit"])
def test_huge_paging_values_are_4xx_on_every_paginated_endpoint(taipan_server, listed, param):
    for path in paginated(listed):
        for value in HUGE:
            r = httpx.get(f"{taipan_server.api}{path}", params={param: value})  # anonymous, public channel
            assert 400 <= r.status_code < 500, (path, value, r.status_code, r.text[:200])
            body = r.json()
            assert body["code"] and body["message"] and body["hint"], body
        assert httpx.get(f"{taipan_server.api}{path}", params={param: "10"}).status_code == 200, path


# ------------------------------------------------------------------ crafted uploads

def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_bz2(members: list[tuple[str, bytes]]) -> bytes:
    return bz2.compress(tar_bytes(members))


def dot_conda(stem: str, info: bytes) -> bytes:
    """A .conda whose info component holds the (uncompressed) tar ``info``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", b'{"conda_pkg_format_version": 2}')
        z.writestr(f"pkg-{stem}.tar.zst", zstandard.ZstdCompressor().compress(tar_bytes([("x.txt", b"x")])))
        z.writestr(f"info-{stem}.tar.zst", zstandard.ZstdCompressor().compress(info))
    return buf.getvalue()


def index(**changes: object) -> bytes:
    record = {"name": "odd", "version": "1.0", "build": "0", "build_number": 0, "subdir": "noarch",
              "depends": []}
    return json.dumps({**record, **changes}).encode()


def with_about(about: bytes) -> bytes:
    return tar_bz2([("info/index.json", index()), ("info/about.json", about)])


CRAFTED = {
    "index.json is a list (.conda)": ("odd-1.0-0.conda",
                                      dot_conda("odd-1.0-0", tar_bytes([("info/index.json", b"[1]")]))),
    "index.json is a string": ("odd-1.0-0.tar.bz2", tar_bz2([("info/index.json", b'"odd"')])),
    "integer past 64 bits": ("odd-1.0-0.tar.bz2", tar_bz2([("info/index.json", index(build_number=2**70))])),
    "subdir is a list": ("odd-1.0-0.tar.bz2", tar_bz2([("info/index.json", index(subdir=["noarch"]))])),
    "version is a number": ("odd-1-0.tar.bz2", tar_bz2([("info/index.json", index(version=1))])),
    "NaN in index.json": ("odd-1.0-0.tar.bz2", tar_bz2([("info/index.json", b'{"name": "odd", "x": NaN}')])),
    "NUL in a value": ("odd-1.0-0.tar.bz2", tar_bz2([("info/index.json", index(license="MIT\u0000"))])),
    "lone surrogate in about.json": ("odd-1.0-0.tar.bz2", with_about(b'{"summary": "\\ud800"}')),
    "Infinity in about.json": ("odd-1.0-0.tar.bz2", with_about(b'{"summary": Infinity}')),
    "about.json nested 300 deep": ("odd-1.0-0.tar.bz2", with_about(b'{"x":' + b"[" * 300 + b"]" * 300 + b"}")),
    "about.json of 15 MiB": ("odd-1.0-0.tar.bz2", with_about(json.dumps({"summary": "a" * 15 * 2**20}).encode())),
    "not UTF-8": ("odd-1.0-0.tar.bz2", tar_bz2([("info/index.json", b'{"name": "\xff"}')])),
    "a .tar.bz2 that is a zip": ("odd-1.0-0.tar.bz2", b"BZh" + dot_conda("odd-1.0-0", tar_bytes([]))),
    "a member name with NUL": ("odd-1.0-0.tar.bz2", tar_bz2([("info/\x00index.json", index())])),
}


@pytest.fixture
def empty_channel(taipan_server):
    name = f"crafted-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        yield c, name
        assert c.get(f"/channels/{name}/artifacts").json()["total_count"] == 0, "a refused upload was stored"
        history = c.get(f"/channels/{name}/history").json()["items"]
        assert [e["event_type"] for e in history] == ["channel_created"]
    assert httpx.get(f"{taipan_server.api}/repo/{name}/noarch/repodata.json").json()["packages"] == {}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_upload_is_a_clear_400_and_stores_nothing(empty_channel, case):
    c, name = empty_channel
    filename, data = CRAFTED[case]
    r = c.post(f"/channels/{name}/artifacts", files={"content": (filename, data)}, data={"filetype": "conda1"})
    assert r.status_code == 400, (case, r.status_code, r.text[:300])
    body = r.json()
    assert body["code"] in ("invalid_package", "unknown_subdir", "filename_mismatch") and body["hint"], body


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced as read: a bomb's payload never sits in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


def bomb_tar(first: str, size: int, then: list[tuple[str, bytes]], compress) -> bytes:
    out = io.BytesIO()
    with compress(out) as sink, tarfile.open(fileobj=sink, mode="w|") as tar:
        info = tarfile.TarInfo(first)
        info.size = size
        tar.addfile(info, io.BufferedReader(Zeros(size), 1 << 20))
        for name, data in then:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_decompression_bombs_are_refused(empty_channel):
    """Metadata is read with bounded decompression: a tiny upload that expands to hundreds of MiB
    before its info/index.json is refused as too large when decompressed (it was stored before)."""
    c, name = empty_channel
    tbz2 = bomb_tar("lib/zeros", 256 * 2**20, [("info/index.json", index())],
                    lambda out: bz2.BZ2File(out, "wb"))
    assert len(tbz2) < 64 * 1024
    zst_info = bomb_tar("info/files", 256 * 2**20, [("info/index.json", index())],
                        lambda out: zstandard.ZstdCompressor().stream_writer(out, closefd=False))
    conda = io.BytesIO()
    with zipfile.ZipFile(conda, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", b'{"conda_pkg_format_version": 2}')
        z.writestr("info-odd-1.0-0.tar.zst", zst_info)
    for filename, data in (("odd-1.0-0.tar.bz2", tbz2), ("odd-1.0-0.conda", conda.getvalue())):
        r = c.post(f"/channels/{name}/artifacts", files={"content": (filename, data)})
        assert r.status_code == 400, (filename, r.status_code, r.text[:300])
        body = r.json()
        assert body["code"] == "too_large_decompressed" and "too large when decompressed" in body["message"]
