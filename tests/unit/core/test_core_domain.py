"""Pure rules: names, conda file names, permissions, repodata assembly."""

from __future__ import annotations

import msgpack
import pytest
import zstandard

from taipan.domain import repodata as rd
from taipan.domain.conda import make_record, parse_conda_filename, sniff_conda_format
from taipan.domain.names import split_channel_path, validate_channel_name, validate_filename
from taipan.domain.permissions import Principal, can_read_channel, can_write_channel
from taipan.errors import InvalidInput


@pytest.mark.parametrize("name", ["snakes", "a", "my-chan_2", "x" * 64])
def test_valid_channel_names(name):
    assert validate_channel_name(name) == name


@pytest.mark.parametrize("name", ["", "Snakes", "2a", "-a", "a.b", "a/b", "x" * 65, "t", "ünï"])
def test_invalid_channel_names(name):
    with pytest.raises(InvalidInput) as info:
        validate_channel_name(name)
    assert info.value.hint and info.value.code == "invalid_channel_name"


def test_subchannels_may_not_be_subdirs():
    with pytest.raises(InvalidInput):
        validate_channel_name("linux-64", sub=True)
    assert validate_channel_name("linux-64") == "linux-64"  # a top-level channel may
    assert split_channel_path("a/b") == ("a", "b")
    with pytest.raises(InvalidInput):
        split_channel_path("a/b/c")


@pytest.mark.parametrize("fn", ["../x-1-0.conda", "a/b-1-0.conda", "..", ".hidden-1-0.conda", "a\\b.conda",
                                "x-1-0.conda\x00", "x" * 300])
def test_unsafe_filenames(fn):
    with pytest.raises(InvalidInput):
        validate_filename(fn)


def test_conda_filenames():
    f = parse_conda_filename("py-lib-1.2.3-py311_0.tar.bz2")
    assert (f.name, f.version, f.build, f.ext) == ("py-lib", "1.2.3", "py311_0", ".tar.bz2")
    assert parse_conda_filename("a-1-0.conda").ext == ".conda"
    for bad in ("a-1.conda", "a-1-0.zip", "a--0.conda"):
        with pytest.raises(InvalidInput):
            parse_conda_filename(bad)
    assert sniff_conda_format(b"PK\x03\x04xx") == ".conda"
    assert sniff_conda_format(b"BZh91AY") == ".tar.bz2"
    assert sniff_conda_format(b"\x1f\x8b") is None


def test_permissions():
    anon, alice = Principal(), Principal("u1", "alice", "user", frozenset({"artifact:download"}), kind="scope")
    admin = Principal("u0", "root", "admin", frozenset({"*"}), kind="session")
    assert can_read_channel(anon, "public", set())
    assert not can_read_channel(anon, "authenticated", set())
    assert can_read_channel(alice, "authenticated", set())
    assert not can_read_channel(alice, "private", {"u2"})
    assert can_read_channel(alice, "private", {"u1"}) and can_read_channel(admin, "private", set())
    assert not can_write_channel(alice, {"u2"}) and can_write_channel(admin, set())
    assert alice.has_scope("artifact:download") and not alice.has_scope("artifact:create")
    assert admin.has_scope("anything") and not anon.has_scope("artifact:download")
    chan = Principal("u1", "a", "user", frozenset({"channel:view"}), kind="scope")
    assert chan.has_scope("subchannel:view") and not chan.has_scope("subchannel:edit")


def _records() -> dict[str, dict]:
    out = {}
    for i, v in enumerate(["1.0", "1.10", "1.9", "2.0a1"]):
        fn = f"pkg-{v}-0.conda"
        out[fn] = make_record({"name": "pkg", "version": v, "build": "0", "depends": ["x"],
                               "timestamp": 1700000000000 + i}, sha256="ab" * 32, md5="cd" * 16,
                              size=10 + i, subdir="noarch")
    out["other-1-0.tar.bz2"] = make_record({"name": "other", "version": "1", "build": "0"},
                                           sha256="ef" * 32, md5="01" * 16, size=1, subdir="noarch")
    return out


def test_current_subset_uses_conda_version_order():
    keep = rd.current_subset(_records())
    assert set(keep) == {"pkg-2.0a1-0.conda", "other-1-0.tar.bz2"}


def test_shards_hold_raw_hashes():
    records = {fn: r for fn, r in _records().items() if r["name"] == "pkg"}
    shard = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(rd.encode_shard(records)))
    rec = shard["packages.conda"]["pkg-1.0-0.conda"]
    assert rec["sha256"] == bytes.fromhex("ab" * 32) and rec["md5"] == bytes.fromhex("cd" * 16)
    index = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(
        rd.encode_shard_index("noarch", {"pkg": b"\x01" * 32}, "2026-01-01T00:00:00Z")))
    assert index["shards"] == {"pkg": b"\x01" * 32} and index["info"]["shards_base_url"] == "./shards/"
