"""Build repodata.json, current_repodata.json, channeldata.json and CEP-16 shards from records.

repodata.json is published in segments (see ``families.conda.SubdirIndex``): a head, the members of
``packages`` of every bucket of package names, a middle, the members of ``packages.conda``, a tail.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
import orjson
import zstandard

REPODATA_VERSION = 1


def record_bytes(record: Mapping[str, Any]) -> bytes:
    """The canonical encoding of a record (sorted keys) stored in the database."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def is_conda_v2(filename: str) -> bool:
    return filename.endswith(".conda")


def package_name(filename: str) -> str:
    """The package name in a conda file name (``<name>-<version>-<build><ext>``; no extension has
    a dash)."""
    return filename.rsplit("-", 2)[0]


def repodata_head(subdir: str) -> bytes:
    """What precedes the members of ``packages`` in repodata.json."""
    return b'{"info":' + orjson.dumps({"subdir": subdir}) + b',"packages":{'


# Between the members of ``packages`` and those of ``packages.conda``; after those.
REPODATA_MIDDLE = b'},"packages.conda":{'
REPODATA_TAIL = b'},"removed":[],"repodata_version":' + str(REPODATA_VERSION).encode() + b"}"


def members(records: Mapping[str, Mapping[str, Any]]) -> bytes:
    """``"fn":{record},...`` ordered by file name, records in their canonical encoding."""
    return orjson.dumps(records, option=orjson.OPT_SORT_KEYS)[1:-1]


@functools.lru_cache(maxsize=1 << 16)
def version_key(version: str) -> Any:
    """A version's conda order (rattler's ``Version``), cached: a bucket's newest versions are
    compared again each time one of its names changes."""
    from rattler import Version

    try:
        return Version(version)
    except Exception:  # an unparsable version sorts first, never breaks the index
        return Version("0")


def current_subset(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """For current_repodata.json: per package name, the files of its newest version (each version
    string is parsed once; a name with a single version string needs no parsing)."""
    versions: dict[str, set[str]] = {}
    for rec in records.values():
        versions.setdefault(rec["name"], set()).add(str(rec["version"]))
    keep: dict[str, set[str]] = {}
    for name, strings in versions.items():
        if len(strings) == 1:
            keep[name] = strings
            continue
        keys = {v: version_key(v) for v in strings}
        newest = max(keys.values())
        keep[name] = {v for v, k in keys.items() if k == newest}
    return {fn: rec for fn, rec in records.items() if str(rec["version"]) in keep[rec["name"]]}


def encode_shard(records: Mapping[str, Mapping[str, Any]], pack: zstandard.ZstdCompressor | None = None) -> bytes:
    """One CEP-16 shard (all files of one package name), msgpack + zstd; hashes as raw bytes.
    ``pack``: a level-3 compressor to reuse (one zstd context per shard fragments the heap)."""
    shard: dict[str, Any] = {"packages": {}, "packages.conda": {}, "removed": []}
    for fn in sorted(records):
        rec = dict(records[fn])
        for key in ("sha256", "md5"):
            if isinstance(rec.get(key), str):
                rec[key] = bytes.fromhex(rec[key])
        shard["packages.conda" if is_conda_v2(fn) else "packages"][fn] = rec
    return (pack or zstandard.ZstdCompressor(level=3)).compress(msgpack.packb(shard, use_bin_type=True))


def shard_index_shards(data: bytes) -> dict[str, bytes]:
    """The shards a shard index names: package name -> sha256 digest."""
    index = msgpack.unpackb(zstandard.ZstdDecompressor().decompressobj().decompress(data), raw=False)
    return dict(index["shards"])


def shard_index_digests(data: bytes) -> frozenset[str]:
    """The shard digests (hex) a shard index names."""
    return frozenset(d.hex() for d in shard_index_shards(data).values())


def encode_shard_index(subdir: str, digests: Mapping[str, bytes], created_at: str) -> bytes:
    index = {
        "info": {"subdir": subdir, "base_url": "", "shards_base_url": "./shards/",
                 "created_at": created_at},
        "version": 1,
        "shards": dict(sorted(digests.items())),
    }
    return zstandard.ZstdCompressor(level=3).compress(msgpack.packb(index, use_bin_type=True))


def channeldata(channel: str, subdirs: Iterable[str],
                latest: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """channeldata.json: the channel's subdirs and, per package, its newest metadata."""
    packages = {}
    for name in sorted(latest):
        rec = latest[name]
        packages[name] = {
            k: rec[k] for k in ("version", "license", "summary", "description", "home", "doc_url",
                                "dev_url", "timestamp", "subdirs") if rec.get(k) is not None
        }
    return {"channeldata_version": 1, "packages": packages, "subdirs": sorted(set(subdirs))}
