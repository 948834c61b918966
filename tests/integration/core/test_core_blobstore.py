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
