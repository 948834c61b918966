"""The bucketed conda index: segmented repodata.json / current_repodata.json, per-part gzip members,
shards by digest; checked against json.loads and against a whole-file builder of the same records."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Callable

import msgpack
import pytest
import zstandard

from taipan.domain import repodata as rd
from taipan.domain.conda import make_record
from taipan.domain.families.base import Chunk, Segmented, deflate
from taipan.domain.families.conda import BUCKETS, SHARDS, SubdirIndex, bucket_of


class DictStore:
    """A ContentStore in memory, counting what is written."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.puts = 0

    def put(self, sha256: str, data: bytes, *, later: bool = False) -> None:
        assert hashlib.sha256(data).hexdigest() == sha256
        self.blobs[sha256] = data
        self.puts += 1

    def get(self, sha256: str) -> bytes:
        return self.blobs[sha256]

    def assemble(self, seg: Segmented, *, deflated: bool = False) -> bytes:
        out = []
        for p in seg.parts:
            if isinstance(p, bytes):
                out.append(deflate(p, 6) if deflated else p)
            else:
                assert isinstance(p, Chunk) and (p.deflate is not None or not deflated)
                assert not deflated or zlib.crc32(self.blobs[p.sha256]) == p.deflate[2]
                out.append(self.blobs[p.deflate[0]] if deflated else self.blobs[p.sha256])
        return b"".join(out)


def whole_repodata(subdir: str, records: dict[str, dict]) -> dict:
    """What the previous whole-file builder made: every record of the subdir in one object."""
    tar = {fn: r for fn, r in sorted(records.items()) if not fn.endswith(".conda")}
    conda = {fn: r for fn, r in sorted(records.items()) if fn.endswith(".conda")}
    return {"info": {"subdir": subdir}, "packages": tar, "packages.conda": conda, "removed": [],
            "repodata_version": 1}


def record(name: str, version: str, ext: str, i: int = 0) -> tuple[str, dict]:
    fn = f"{name}-{version}-{i}{ext}"
    rec = make_record({"name": name, "version": version, "build": str(i), "depends": ["x >=1"],
                       "timestamp": 1700000000000 + i}, sha256=hashlib.sha256(fn.encode()).hexdigest(),
                      md5="cd" * 16, size=10 + i, subdir="noarch")
    return fn, rec


def rows(records: dict[str, dict | None]) -> dict[str, tuple[str, bytes] | None]:
    return {fn: None if r is None else (r["name"], rd.record_bytes(r)) for fn, r in records.items()}


def check(index: SubdirIndex, store: DictStore, records: dict[str, dict]) -> dict:
    files = index.build(store)
    repodata = files.files["repodata.json"]
    assert isinstance(repodata, Segmented)
    whole = store.assemble(repodata)
    assert len(whole) == repodata.size
    assert json.loads(whole) == whole_repodata("noarch", records)
    # The parts' deflate streams concatenate into one stream of the same bytes.
    stream = zlib.decompressobj(-15)
    assert stream.decompress(store.assemble(repodata, deflated=True) + b"\x03\x00") == whole and stream.eof
    current = files.files["current_repodata.json"]
    assert isinstance(current, Segmented)
    kept = rd.current_subset(records)
    assert json.loads(store.assemble(current)) == whole_repodata("noarch", dict(kept))
    # Each .zst is one zstd frame (rattler reads only the first) of the very same bytes, joined from
    # the parts' stored zstd blocks.
    for name, plain in (("repodata.json", whole), ("current_repodata.json", store.assemble(current))):
        zst = files.files[name + ".zst"]
        assert isinstance(zst, Segmented) and len(store.assemble(zst)) == zst.size
        reader = zstandard.ZstdDecompressor().decompressobj()
        assert reader.decompress(store.assemble(zst)) == plain and reader.eof and not reader.unused_data
    # Every name's shard is stored under its digest, and the listing names exactly those.
    listing = files.files[SHARDS.listing]
    assert isinstance(listing, bytes)
    index_doc = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(listing))
    names = {rd.package_name(fn) for fn in records}
    assert set(index_doc["shards"]) == names
    assert SHARDS.digests(listing) == {d.hex() for d in index_doc["shards"].values()}
    for name, digest in index_doc["shards"].items():
        shard = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(store.blobs[digest.hex()]))
        assert set(shard["packages"]) | set(shard["packages.conda"]) == {
            fn for fn in records if rd.package_name(fn) == name}
    return files.files


@pytest.mark.parametrize("exts", [(".tar.bz2",), (".conda",), (".tar.bz2", ".conda")])
def test_segments_join_into_the_whole_repodata(exts):
    index, store = SubdirIndex("noarch"), DictStore()
    records = dict(record(f"pkg{i % 40}", f"1.{i}", exts[i % len(exts)], i) for i in range(300))
    index.apply(rows(records))
    check(index, store, records)


def test_empty_subdir_and_one_bucket():
    index, store = SubdirIndex("noarch"), DictStore()
    check(index, store, {})
    one = dict([record("solo", "1.0", ".conda"), record("solo", "2.0", ".tar.bz2", 1)])
    index.apply(rows(one))
    check(index, store, one)


def test_a_change_rewrites_only_its_bucket_and_removals_vanish():
    index, store = SubdirIndex("noarch"), DictStore()
    records = dict(record(f"pkg{i % 50}", f"1.{i}", (".conda", ".tar.bz2")[i % 2], i) for i in range(400))
    index.apply(rows(records))
    before = check(index, store, records)
    store.puts = 0
    gone = "pkg3-1.3-3.tar.bz2"
    fn, new = record("pkg3", "9.0", ".conda", 999)
    index.apply(rows({gone: None, fn: new}))
    del records[gone]
    records[fn] = new
    after = check(index, store, records)
    # One bucket: up to four parts (each with its gzip member and zstd blocks) and one shard.
    assert 0 < store.puts <= 13
    changed = {p for p in after["repodata.json"].parts if isinstance(p, Chunk)} - set(before["repodata.json"].parts)
    assert {bucket_of(fn)} == {b for b in range(BUCKETS) for c in changed if c in index.buckets[b].chunks}
    # Removing every file of a name drops its shard.
    index.apply(rows({f: None for f in list(records) if rd.package_name(f) == "pkg3"}))
    records = {f: r for f, r in records.items() if rd.package_name(f) != "pkg3"}
    check(index, store, records)


def test_a_file_added_and_removed_in_one_batch_and_re_added():
    index, store = SubdirIndex("noarch"), DictStore()
    fn, rec = record("flip", "1.0", ".conda")
    index.apply(rows({fn: rec}))
    index.apply(rows({fn: None}))
    check(index, store, {})
    index.apply(rows({fn: rec}))
    check(index, store, {fn: rec})


def _read(store: DictStore, files: dict) -> Callable[[str], bytes]:
    return lambda name: files[name] if isinstance(files[name], bytes) else store.assemble(files[name])


def test_a_resumed_index_goes_on_as_the_one_that_built():
    """A fresh index resumed from a build's snapshot and files applies the next change to exactly
    what the building index makes; a snapshot that does not match the files is refused."""
    built, store = SubdirIndex("noarch"), DictStore()
    records = dict(record(f"pkg{i % 30}", f"1.{i}", (".conda", ".tar.bz2")[i % 2], i) for i in range(200))
    built.apply(rows(records))
    files = built.build(store)
    snapshot = json.loads(json.dumps(built.snapshot()))  # as the manifest stores it
    resumed = SubdirIndex("noarch")
    resumed.resume(snapshot, files, _read(store, files.files))
    change = {"pkg3-1.3-3.tar.bz2": None, **dict([record("pkg3", "9.0", ".conda", 999)])}
    for index in (built, resumed):
        index.apply(rows(change))
    records = {k: v for k, v in {**records, **change}.items() if v is not None}
    a, b = check(built, store, records), check(resumed, store, records)
    assert a["repodata.json"] == b["repodata.json"] and a["current_repodata.json"] == b["current_repodata.json"]
    assert built.shard_digest == resumed.shard_digest
    wrong = {"buckets": [ids[1:] for ids in snapshot["buckets"]]}
    with pytest.raises(ValueError):
        SubdirIndex("noarch").resume(wrong, files, _read(store, files.files))
