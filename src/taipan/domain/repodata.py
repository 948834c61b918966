"""Build repodata.json, current_repodata.json, channeldata.json and CEP-16 shards from records.

Records arrive as pre-serialized JSON fragments (bytes), so that a subdir of 100,000 records is
re-assembled by joining bytes rather than re-encoding dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
import orjson
import zstandard

from taipan.domain.conda import CONDA_EXTS

REPODATA_VERSION = 1


def record_bytes(record: Mapping[str, Any]) -> bytes:
    """The canonical encoding of a record (sorted keys) stored in the database."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def fragment(filename: str, record_json: bytes) -> bytes:
    return orjson.dumps(filename) + b":" + record_json


def is_conda_v2(filename: str) -> bool:
    return filename.endswith(".conda")


def assemble_repodata(subdir: str, fragments: Mapping[str, bytes], *, base_url: str | None = None,
                      removed: Iterable[str] = ()) -> bytes:
    """Join the fragments of one subdir into repodata.json bytes, ordered by file name."""
    tar, conda = [], []
    for fn in sorted(fragments):
        (conda if is_conda_v2(fn) else tar).append(fragments[fn])
    info: dict[str, Any] = {"subdir": subdir}
    if base_url is not None:
        info["base_url"] = base_url
    head = b'{"info":' + orjson.dumps(info)
    return b"".join((
        head,
        b',"packages":{', b",".join(tar), b'},"packages.conda":{', b",".join(conda),
        b'},"removed":', orjson.dumps(sorted(removed)),
        b',"repodata_version":', str(REPODATA_VERSION).encode(), b"}",
    ))


def version_key(version: str) -> Any:
    from rattler import Version

    try:
        return Version(version)
    except Exception:  # an unparsable version sorts first, never breaks the index
        return Version("0")


def current_subset(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """For current_repodata.json: per package name, the files of its newest version."""
    newest: dict[str, Any] = {}
    for rec in records.values():
        name, key = rec["name"], version_key(str(rec["version"]))
        if name not in newest or key > newest[name]:
            newest[name] = key
    return {fn: rec for fn, rec in records.items()
            if version_key(str(rec["version"])) == newest[rec["name"]]}


def encode_shard(records: Mapping[str, Mapping[str, Any]]) -> bytes:
    """One CEP-16 shard (all files of one package name), msgpack + zstd; hashes as raw bytes."""
    shard: dict[str, Any] = {"packages": {}, "packages.conda": {}, "removed": []}
    for fn in sorted(records):
        rec = dict(records[fn])
        for key in ("sha256", "md5"):
            if isinstance(rec.get(key), str):
                rec[key] = bytes.fromhex(rec[key])
        shard["packages.conda" if is_conda_v2(fn) else "packages"][fn] = rec
    return zstandard.ZstdCompressor(level=3).compress(msgpack.packb(shard, use_bin_type=True))


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


def strip_ext(filename: str) -> str:
    for ext in CONDA_EXTS:
        if filename.endswith(ext):
            return filename[: -len(ext)]
    return filename
