"""A passive file whose upstream bytes do not match its index is never handed out complete."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest
from mirror_upstream import UpstreamServer

from taipan.errors import UpstreamError
from taipan.upstreams.conda import CHUNK, CondaUpstream


@pytest.fixture
def served(tmp_path: Path):
    srv = UpstreamServer(tmp_path).start()
    yield srv, tmp_path
    srv.stop()


def _consume(up: CondaUpstream, url: str, sha: str, size: int) -> tuple[int, Exception | None]:
    got, err = 0, None
    try:
        for chunk in up.stream_to(url, io.BytesIO(), sha256=sha, size=size):
            got += len(chunk)
    except UpstreamError as exc:
        err = exc
    return got, err


@pytest.mark.parametrize("length", [1000, 3 * CHUNK + 17])
def test_tampered_bytes_never_reach_the_client_complete(served, length: int) -> None:
    srv, root = served
    good = os.urandom(length)
    bad = bytearray(good)
    bad[-5] ^= 0xFF  # same size, different sha256
    (root / "f.conda").write_bytes(bytes(bad))
    with CondaUpstream(srv.url, retries=0) as up:
        got, err = _consume(up, srv.url + "/f.conda", hashlib.sha256(good).hexdigest(), length)
    assert err is not None and err.code == "upstream_checksum"
    assert got < length  # the last chunk is held back until verified


def test_good_bytes_stream_in_full(served) -> None:
    srv, root = served
    data = os.urandom(2 * CHUNK + 3)
    (root / "g.conda").write_bytes(data)
    sink = io.BytesIO()
    with CondaUpstream(srv.url, retries=0) as up:
        out = b"".join(up.stream_to(srv.url + "/g.conda", sink, sha256=hashlib.sha256(data).hexdigest(),
                                    size=len(data)))
    assert out == data == sink.getvalue()


def test_oversized_upstream_stops_early(served) -> None:
    srv, root = served
    (root / "big.conda").write_bytes(os.urandom(3 * CHUNK))
    with CondaUpstream(srv.url, retries=0) as up:
        got, err = _consume(up, srv.url + "/big.conda", "0" * 64, CHUNK)
    assert err is not None and got == 0


def test_md5_is_checked_when_the_index_has_no_sha256(served) -> None:
    srv, root = served
    good = os.urandom(1000)
    bad = bytearray(good)
    bad[3] ^= 0xFF
    (root / "old.tar.bz2").write_bytes(bytes(bad))
    md5 = hashlib.md5(good).hexdigest()
    with CondaUpstream(srv.url, retries=0) as up:
        got, err = _consume_md5(up, srv.url + "/old.tar.bz2", md5, len(good))
        assert err is not None and err.code == "upstream_checksum" and got == 0
        with pytest.raises(UpstreamError):
            up.download(srv.url + "/old.tar.bz2", root / "dl.part", sha256=None, size=len(good), md5=md5)


def _consume_md5(up: CondaUpstream, url: str, md5: str, size: int) -> tuple[int, Exception | None]:
    got, err = 0, None
    try:
        for chunk in up.stream_to(url, io.BytesIO(), sha256=None, size=size, md5=md5):
            got += len(chunk)
    except UpstreamError as exc:
        err = exc
    return got, err
