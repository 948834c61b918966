"""The conda family: .conda and .tar.bz2 packages, indexed per platform subdir as repodata.json (with
.zst, .bz2, current_repodata.json) and CEP-16 shards."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import zstandard
from packageurl import PackageURL

from taipan.domain import repodata as rd
from taipan.domain import zstd_join
from taipan.domain.conda import (
    CONDA_EXTS,
    check_index_matches,
    make_record,
    parse_conda_filename,
    sniff_conda_format,
)
from taipan.domain.conda_archive import package_files, read_package_info
from taipan.domain.conda_record import check_record
from taipan.domain.families.base import (
    Addressed,
    Artifact,
    Chunk,
    Compressed,
    ContentStore,
    IndexFiles,
    SbomDependency,
    SbomInfo,
    Segmented,
    deflate,
    zstd_joined,
)
from taipan.domain.names import SUBDIR_SET
from taipan.errors import InvalidInput

MEDIA_TYPES = {
    "repodata.json": "application/json",
    "repodata.json.zst": "application/zstd",
    "repodata.json.bz2": "application/x-bzip2",
    "current_repodata.json": "application/json",
    "current_repodata.json.zst": "application/zstd",
    "repodata_shards.msgpack.zst": "application/octet-stream",
}
# Package names are spread over this many buckets by a stable hash; a change rebuilds its bucket.
BUCKETS = 256
# Changes waiting for a build are kept compressed in blocks of about this size (a first load).
PENDING_BLOCK = 32 * 1024
# Each stored part has a deflate stream too (served inside one gzip member for Accept-Encoding: gzip)
# and zstd blocks (joined into the one frame of repodata.json.zst): level 3, or level 1 for a part
# above this size (a large subdir: 3x faster, and as small).
PART_DEFLATE_LEVEL = 1
PART_ZSTD_FAST_ABOVE = 256 << 10
SHARDS = Addressed(prefix="shards/", suffix=".msgpack.zst", listing="repodata_shards.msgpack.zst",
                   media_type="application/octet-stream", digests=rd.shard_index_digests)
# The parts a bucket contributes, in this order: packages and packages.conda members of
# repodata.json, then of current_repodata.json.
_PARTS = 4


def bucket_of(filename: str) -> int:
    return _bucket_of_name(rd.package_name(filename))


def _bucket_of_name(name: str) -> int:
    return zlib.crc32(name.encode()) % BUCKETS


def _split(records: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    tar, conda = {}, {}
    for fn, rec in records.items():
        (conda if rd.is_conda_v2(fn) else tar)[fn] = rec
    return tar, conda


def _store_part(store: ContentStore, data: bytes, old: Chunk | None) -> Chunk | None:
    """The stored chunk of one part, with its deflate stream and zstd blocks (the old chunk when
    unchanged)."""
    if not data:
        return None
    sha = hashlib.sha256(data).hexdigest()
    if old is not None and old.sha256 == sha:
        return old
    member = deflate(data, PART_DEFLATE_LEVEL)
    member_sha = hashlib.sha256(member).hexdigest()
    blocks, window = zstd_join.part_blocks(data, 1 if len(data) > PART_ZSTD_FAST_ABOVE else 3)
    blocks_sha = hashlib.sha256(blocks).hexdigest()
    store.put(sha, data)
    store.put(member_sha, member)
    store.put(blocks_sha, blocks)
    return Chunk(sha, len(data), (member_sha, len(member), zlib.crc32(data)), (blocks_sha, len(blocks), window))


class _Bucket:
    """The files of the package names of one bucket: the four parts it contributes as stored
    chunks (its records are read back from the store when it changes), and the changes not built
    yet (``"fn":record`` or ``"fn":null``, compressed in blocks) with the names they touch."""

    __slots__ = ("chunks", "blocks", "raw", "raw_size", "touched")

    def __init__(self) -> None:
        self.chunks: list[Chunk | None] = [None] * _PARTS
        self.blocks: list[bytes] = []
        self.raw: list[bytes] = []
        self.raw_size = 0
        self.touched: set[str] = set()

    def add(self, fn: str, name: str, record: bytes | None, pack: zstandard.ZstdCompressor) -> None:
        member = orjson.dumps(fn) + b":" + (b"null" if record is None else record)
        self.raw.append(member)
        self.raw_size += len(member)
        self.touched.add(name)
        if self.raw_size >= PENDING_BLOCK:
            self.blocks.append(pack.compress(b",".join(self.raw)))
            self.raw, self.raw_size = [], 0

    def _records(self, store: ContentStore) -> dict[str, Any]:
        """The bucket's records with the pending changes applied (a later member wins)."""
        pieces = [store.get(c.sha256) for c in self.chunks[:2] if c is not None]
        unpack = zstandard.ZstdDecompressor()
        pieces += [unpack.decompress(b) for b in self.blocks]
        if self.raw:
            pieces.append(b",".join(self.raw))
        self.blocks, self.raw, self.raw_size = [], [], 0
        merged = orjson.loads(b"{" + b",".join(pieces) + b"}")
        return {fn: rec for fn, rec in merged.items() if rec is not None}

    def build(self, store: ContentStore, shard_digest: dict[str, bytes], pack: zstandard.ZstdCompressor) -> None:
        records = self._records(store)
        parts = (*_split(records), *_split(rd.current_subset(records)))
        for i, part in enumerate(parts):
            self.chunks[i] = _store_part(store, rd.members(part), self.chunks[i])
        by_name: dict[str, dict[str, Any]] = {}
        for fn, rec in records.items():
            if (name := rd.package_name(fn)) in self.touched:
                by_name.setdefault(name, {})[fn] = rec
        for name in self.touched:
            if name not in by_name:
                shard_digest.pop(name, None)
                continue
            data = rd.encode_shard(by_name[name], pack)
            digest = hashlib.sha256(data).digest()
            store.put(digest.hex(), data, later=True)
            shard_digest[name] = digest
        self.touched.clear()


class SubdirIndex:
    """One conda subdir, in buckets of package names (see ``_Bucket``): a change re-encodes only its
    buckets and the shards of the names it touched, and writes them to the store as it goes.

    ``repodata.json`` and ``current_repodata.json`` are ``Segmented``: a head, every bucket's
    ``packages`` part (comma-separated, each after a joint of white space), a middle, every bucket's
    ``packages.conda`` part, a tail. Their ``.zst`` are one zstd frame each (rattler reads one frame
    only), joined from the parts' stored zstd blocks (``zstd_joined``); shards are content-addressed
    files (``SHARDS``) listed by the shard index."""

    addressed = SHARDS

    def __init__(self, subdir: str) -> None:
        self.subdir = subdir
        self.buckets = [_Bucket() for _ in range(BUCKETS)]
        self.shard_digest: dict[str, bytes] = {}
        self._dirty: set[int] = set()
        # One zstd context each, reused: a fresh one per block or shard fragments the heap.
        self._pack = zstandard.ZstdCompressor(level=1)  # pending blocks
        self._shard_pack = zstandard.ZstdCompressor(level=3)

    def apply(self, rows: Mapping[str, tuple[str, bytes] | None]) -> None:
        for fn, row in rows.items():
            name = rd.package_name(fn)  # of the file name: a removal has only that
            b = _bucket_of_name(name)
            self.buckets[b].add(fn, name, None if row is None else row[1], self._pack)
            self._dirty.add(b)

    def build(self, store: ContentStore) -> IndexFiles:
        for b in sorted(self._dirty):
            self.buckets[b].build(store, self.shard_digest, self._shard_pack)
        self._dirty.clear()
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        full, current = self._segmented(0), self._segmented(2)
        files: dict[str, bytes | Segmented | Compressed | Chunk] = {
            "repodata.json": full, "current_repodata.json": current,
            "repodata.json.zst": zstd_joined(full), "current_repodata.json.zst": zstd_joined(current),
            SHARDS.listing: rd.encode_shard_index(self.subdir, self.shard_digest, created)}
        lazy: dict[str, Callable[[Any], bytes] | Compressed] = {"repodata.json.bz2": Compressed("repodata.json", "bz2")}
        return IndexFiles(files=files, media_types=dict(MEDIA_TYPES), lazy=lazy)

    def snapshot(self) -> dict[str, Any]:
        """Which bucket each stored part of the segmented files belongs to, per part kind (the
        parts themselves, in bucket order, are in the published files; the shards in the listing)."""
        assert not self._dirty, "a snapshot is taken right after a build"
        return {"buckets": [[b for b, bucket in enumerate(self.buckets) if bucket.chunks[i] is not None]
                            for i in range(_PARTS)]}

    def resume(self, snapshot: dict[str, Any], files: IndexFiles, read: Callable[[str], bytes]) -> None:
        ids = snapshot["buckets"]
        if len(ids) != _PARTS:
            raise ValueError("not a snapshot of this index")
        for first, name in ((0, "repodata.json"), (2, "current_repodata.json")):
            segmented = files.files[name]
            if not isinstance(segmented, Segmented):
                raise ValueError(f"{name} is not segmented")
            chunks = [p for p in segmented.parts if isinstance(p, Chunk)]
            if len(chunks) != len(ids[first]) + len(ids[first + 1]):
                raise ValueError(f"the snapshot does not match the parts of {name}")
            stored = iter(chunks)
            for i in (first, first + 1):
                for b in ids[i]:
                    self.buckets[int(b)].chunks[i] = next(stored)
        self.shard_digest = rd.shard_index_shards(read(SHARDS.listing))

    def _segmented(self, first: int) -> Segmented:
        parts: list[bytes | Chunk] = [rd.repodata_head(self.subdir)]
        for i, after in ((first, rd.REPODATA_MIDDLE), (first + 1, rd.REPODATA_TAIL)):
            for k, chunk in enumerate(c for b in self.buckets if (c := b.chunks[i]) is not None):
                parts.append(b"," + zstd_join.JOINT if k else zstd_join.JOINT)
                parts.append(chunk)
            parts.append(after)
        return Segmented(tuple(parts))


class CondaFamily:
    name = "conda"
    title = "conda package"
    upload_types = frozenset({"", "conda1", "conda", "conda_package", "conda_package_1", "conda_package_2"})
    roots = frozenset(SUBDIR_SET | {"channeldata.json"})
    yankable = False

    def sniff(self, filename: str, head: bytes, path: Path | None = None) -> bool:
        return filename.endswith(CONDA_EXTS) and sniff_conda_format(head) is not None

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        fn = parse_conda_filename(filename)
        with open(path, "rb") as fh:
            fmt = sniff_conda_format(fh.read(8))
        if fmt is None:
            raise InvalidInput(f"{filename} is not a conda package archive",
                               "Conda packages are .conda (zip) or .tar.bz2 archives; the file may be corrupt",
                               code="invalid_package")
        if fmt != fn.ext:
            raise InvalidInput(f"{filename} holds a {fmt} archive but its name ends in {fn.ext}",
                               f"Rename it to {fn.name}-{fn.version}-{fn.build}{fmt}", code="filename_mismatch")
        with open(path, "rb") as fh:
            index, about = read_package_info(fh, filename)
        subdir = check_index_matches(index, fn)
        record = make_record(index, sha256=sha256, md5=md5, size=size, subdir=subdir)
        check_record(record)  # what rattler cannot parse would break the whole subdir's index
        return Artifact(family=self.name, name=fn.name, version=fn.version, subdir=subdir, filename=filename,
                        ckey=f"{subdir}/{filename}", record=record,
                        meta={"index.json": index, "about.json": about})

    def version_key(self, version: str) -> Any:
        return rd.version_key(version)

    def install_command(self, name: str, repo_url: str) -> str:
        return f"conda install -c {repo_url} {name}"

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        about = meta.get("about.json") or {}
        deps = []
        for spec in record.get("depends") or ():
            dep = str(spec).split()[0] if str(spec).strip() else ""
            if dep:
                deps.append(SbomDependency(name=dep, requirement=str(spec),
                                           purl=PackageURL("conda", name=dep.lower()).to_string()))
        name, version = str(record.get("name")), str(record.get("version"))
        # purl-spec's conda type: build, channel (the channel URL), subdir and type qualifiers.
        filename = str(record.get("fn") or "")
        qualifiers = {"build": str(record.get("build") or ""), "channel": channel_url, "subdir": subdir}
        if filename.endswith(".tar.bz2"):
            qualifiers["type"] = "tar.bz2"
        elif filename.endswith(".conda"):
            qualifiers["type"] = "conda"
        purl = PackageURL("conda", name=name, version=version, qualifiers=qualifiers).to_string()
        extra = about.get("extra") if isinstance(about.get("extra"), dict) else {}
        supplier = extra.get("maintainers") or about.get("maintainer") or None
        if isinstance(supplier, list):
            supplier = ", ".join(str(s) for s in supplier) or None
        return SbomInfo(name=name, version=version, purl=purl,
                        license=record.get("license") or about.get("license"),
                        supplier=str(supplier) if supplier else None,
                        homepage=about.get("home"), summary=about.get("summary"), dependencies=tuple(deps))

    def sbom_files(self, path: Path, filename: str) -> list[tuple[str, str, str]]:
        with open(path, "rb") as fh:
            return package_files(fh, filename)

    def normalize_name(self, name: str) -> str:
        return name.strip().lower()

    def partition_index(self, subdir: str) -> SubdirIndex:
        return SubdirIndex(subdir)

    def file_type(self, filename: str) -> str:
        return "conda_package_2" if filename.endswith(".conda") else "conda_package_1"

    def package_metadata(self, name: str, latest_meta: Mapping[str, Any], subdirs: list[str],
                         channel_path: str) -> dict[str, Any]:
        index = latest_meta.get("index.json", {})
        about = latest_meta.get("about.json", {})
        return {
            "name": name, "version": index.get("version"), "build_number": index.get("build_number", 0),
            "build": index.get("build"), "license": index.get("license") or about.get("license"),
            "summary": about.get("summary", ""), "description": about.get("description", ""),
            "home": about.get("home"), "dev_url": about.get("dev_url"), "doc_url": about.get("doc_url"),
            "subdirs": subdirs, "install_cmd": f"conda install -c {channel_path} {name}",
        }

    def file_metadata(self, meta: Mapping[str, Any], record: Mapping[str, Any], *, filename: str,
                      channel_url: str, url: str) -> dict[str, Any]:
        return {**meta, "repodata_record.json": {**record, "fn": filename, "channel": channel_url, "url": url}}


CONDA = CondaFamily()
