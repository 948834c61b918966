"""The BlobStore contract, run against every backend (the filesystem one today)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from taipan.storage.filesystem import FilesystemBlobStore


@pytest.fixture(params=["filesystem"])
def store(request, tmp_path: Path):
    return FilesystemBlobStore(tmp_path / "blobs")


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
    for bad in ("../../etc/passwd", "ab", "G" * 64):
        with pytest.raises(ValueError):
            store.exists(bad)
