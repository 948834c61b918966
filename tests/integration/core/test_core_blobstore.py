"""The BlobStore contract, run against every backend: the filesystem, and S3 through a real S3 API
server on 127.0.0.1 (moto's standalone server: MinIO's license rules it out here, and no other S3
server installs from the registries this project may use)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from taipan.storage.filesystem import FilesystemBlobStore


@pytest.fixture(scope="session")
def s3_endpoint():
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
def store(request, tmp_path: Path):
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    from taipan.storage.s3 import S3BlobStore

    endpoint = request.getfixturevalue("s3_endpoint")
    return S3BlobStore(bucket=f"b-{tmp_path.name.lower()[:40]}".replace("_", "-"), scratch=tmp_path / "spool",
                       endpoint_url=endpoint, region="us-east-1", access_key="test", secret_key="test",
                       create_bucket=True)


def test_put_open_range_delete(store, tmp_path: Path):
    data = bytes(range(256)) * 5000
    sha = hashlib.sha256(data).hexdigest()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    assert not store.exists(sha)
    store.put_file(sha, src)
    assert store.exists(sha) and src.exists()  # copy leaves the source
    store.put_file(sha, src)  # idempotent
    with store.open(sha) as fh:
        assert fh.read() == data
    assert b"".join(store.iter_bytes(sha, 1000, 300000)) == data[1000:300000]
    assert store.size(sha) == len(data)
    store.delete(sha)
    assert not store.exists(sha)
    store.delete(sha)  # deleting twice is fine


def test_move_from_tempdir_and_bad_keys(store):
    data = b"hello"
    sha = hashlib.sha256(data).hexdigest()
    tmp = store.tempdir() / "upload-x"
    tmp.write_bytes(data)
    store.put_file(sha, tmp, move=True)
    assert not tmp.exists() and store.open(sha).read() == data
    assert b"".join(store.iter_bytes(sha, 1, 3)) == b"el"
    for bad in ("../../etc/passwd", "ab", "G" * 64):
        with pytest.raises(ValueError):
            store.exists(bad)


def test_s3_presigned_urls_serve_the_bytes(tmp_path: Path, s3_endpoint):
    import httpx

    from taipan.storage.s3 import S3BlobStore

    store = S3BlobStore(bucket="presign", scratch=tmp_path / "spool", endpoint_url=s3_endpoint, region="us-east-1",
                        access_key="test", secret_key="test", create_bucket=True)
    data = b"x" * 100_000
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "f").write_bytes(data)
    store.put_file(sha, tmp_path / "f")
    url = store.presigned_url(sha, filename="pkg-1.0-0.conda")
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == data
    assert "pkg-1.0-0.conda" in r.headers.get("content-disposition", "")
    assert httpx.get(url, headers={"Range": "bytes=10-19"}).content == data[10:20]
    assert sha in set(store.iter_digests())


def _aged(store, data: bytes, seconds: float) -> str:
    import os
    import time

    digest = hashlib.sha256(data).hexdigest()
    tmp = store.tempdir() / f"upload-{digest[:8]}"
    tmp.write_bytes(data)
    store.put_file(digest, tmp, move=True)
    path = store.local_path(digest)
    t = time.time() - seconds
    if path is not None:
        os.utime(path, (t, t))
    elif seconds:
        store.age_for_tests(digest, t)
    return digest


def test_listing_touching_and_reclaiming(store):
    import time

    old = _aged(store, b"old and unused", 7200)
    used = _aged(store, b"old but referenced", 7200)
    fresh = _aged(store, b"just written", 0)
    assert {b.name for b in store.iter_blobs()} == {old, used, fresh}
    assert store.stat(old).size == len(b"old and unused") and store.stat("0" * 64) is None
    cutoff = time.time() - 3600
    assert store.reclaim(old, cutoff, lambda: True) and not store.exists(old)
    assert not store.reclaim(old, cutoff, lambda: True)  # gone already
    assert not store.reclaim(used, cutoff, lambda: False) and store.exists(used)  # a reference keeps it
    assert not store.reclaim(fresh, cutoff, lambda: True) and store.exists(fresh)  # too recent
    # touching (or storing the same bytes again) makes an old blob recent: the cleanup keeps it
    assert store.touch(used) and not store.touch("f" * 64)
    assert not store.reclaim(used, cutoff, lambda: True) and store.exists(used)
    assert [p.name for p in store.tempdir().iterdir()] == []  # nothing held back


def test_a_blob_touched_while_being_reclaimed_is_put_back(store):
    import time

    digest = _aged(store, b"about to be reused", 7200)

    def reused_meanwhile() -> bool:
        assert not store.exists(digest)  # out of reach while the last check runs
        assert not store.touch(digest)  # a writer finds it missing ...
        src = store.tempdir() / "upload-again"
        src.write_bytes(b"about to be reused")
        store.put_file(digest, src, move=True)  # ... and stores it again
        return True

    assert not store.reclaim(digest, time.time() - 3600, reused_meanwhile)
    with store.open(digest) as fh:
        assert fh.read() == b"about to be reused"
    assert [p.name for p in store.tempdir().iterdir()] == []


def test_scratch_files(store):
    import os
    import time

    stale, busy = store.tempdir() / "upload-stale", store.tempdir() / "upload-busy"
    stale.write_bytes(b"x" * 10)
    busy.write_bytes(b"y")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert {(f.name, f.size) for f in store.scratch_files()} == {("upload-stale", 10), ("upload-busy", 1)}
    cutoff = time.time() - 3600
    assert store.remove_scratch("upload-stale", cutoff) and not stale.exists()
    assert not store.remove_scratch("upload-busy", cutoff) and busy.exists()
    with pytest.raises(ValueError):
        store.remove_scratch("../blobs", cutoff)
