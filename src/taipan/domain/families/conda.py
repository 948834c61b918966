"""The conda family: .conda and .tar.bz2 packages, indexed per platform subdir as repodata.json (with
.zst, .bz2, current_repodata.json) and CEP-16 shards."""

from __future__ import annotations

import bz2
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import zstandard
from packageurl import PackageURL

from taipan.domain import repodata as rd
from taipan.domain.conda import (
    CONDA_EXTS,
    check_index_matches,
    make_record,
    parse_conda_filename,
    sniff_conda_format,
)
from taipan.domain.conda_archive import package_files, read_package_info
from taipan.domain.conda_record import check_record
from taipan.domain.families.base import Artifact, IndexFiles, SbomDependency, SbomInfo
from taipan.domain.names import SUBDIR_SET
from taipan.errors import InvalidInput

# Above this size repodata.json.zst is compressed with several threads.
_MT_THRESHOLD = 4 * 1024 * 1024
MEDIA_TYPES = {
    "repodata.json": "application/json",
    "repodata.json.zst": "application/zstd",
    "repodata.json.bz2": "application/x-bzip2",
    "current_repodata.json": "application/json",
    "current_repodata.json.zst": "application/zstd",
    "repodata_shards.msgpack.zst": "application/octet-stream",
}


def zstd(data: bytes) -> bytes:
    threads = 2 if len(data) > _MT_THRESHOLD else 0
    return zstandard.ZstdCompressor(level=3, threads=threads, write_content_size=True).compress(data)


def _record_part(fn: str, frag: bytes) -> bytes:
    return frag[len(orjson.dumps(fn)) + 1:]


class SubdirIndex:
    """One conda subdir: pre-serialized record fragments, per-name shards, rebuilt per change."""

    def __init__(self, subdir: str) -> None:
        self.subdir = subdir
        self.fragments: dict[str, bytes] = {}
        self.name_of: dict[str, str] = {}
        self.by_name: dict[str, set[str]] = {}
        self.shard_digest: dict[str, bytes] = {}
        self.shards: dict[str, bytes] = {}
        self._touched: set[str] = set()

    def apply(self, rows: Mapping[str, tuple[str, bytes] | None]) -> None:
        for fn, row in rows.items():
            old = self.name_of.pop(fn, None)
            if old is not None:
                self.fragments.pop(fn, None)
                self.by_name[old].discard(fn)
                self._touched.add(old)
            if row is not None:
                name, record = row
                self.fragments[fn] = rd.fragment(fn, record)
                self.name_of[fn] = name
                self.by_name.setdefault(name, set()).add(fn)
                self._touched.add(name)

    def _rebuild_shards(self) -> None:
        for name in self._touched:
            fns = self.by_name.get(name)
            if not fns:
                self.by_name.pop(name, None)
                self.shard_digest.pop(name, None)
                continue
            records = {fn: orjson.loads(_record_part(fn, self.fragments[fn])) for fn in fns}
            data = rd.encode_shard(records)
            digest = hashlib.sha256(data).digest()
            self.shard_digest[name] = digest
            self.shards[digest.hex()] = data
        self._touched.clear()

    def build(self, previous: IndexFiles | None) -> IndexFiles:
        self._rebuild_shards()
        repodata = rd.assemble_repodata(self.subdir, self.fragments)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        live = {d.hex() for d in self.shard_digest.values()}
        self.shards = {h: self.shards[h] for h in live}
        files = {"repodata.json": repodata, "repodata.json.zst": zstd(repodata),
                 "repodata_shards.msgpack.zst": rd.encode_shard_index(self.subdir, self.shard_digest, created)}
        etags = {}
        # Keep the previous generation's shards too: a client may hold the previous shard index.
        old = {k: v for k, v in (previous.files if previous else {}).items() if k.startswith("shards/")}
        for h, data in [*((k[len("shards/"):-len(".msgpack.zst")], v) for k, v in old.items()),
                        *self.shards.items()]:
            files[f"shards/{h}.msgpack.zst"] = data
            etags[f"shards/{h}.msgpack.zst"] = f'"{h[:32]}"'
        fragments = dict(self.fragments)
        subdir = self.subdir

        def current(pub: Any) -> bytes:
            records = {fn: orjson.loads(_record_part(fn, frag)) for fn, frag in fragments.items()}
            keep = rd.current_subset(records)
            return rd.assemble_repodata(subdir, {fn: fragments[fn] for fn in keep})

        lazy = {
            "repodata.json.bz2": lambda pub: bz2.compress(pub.file("repodata.json"), 9),
            "current_repodata.json": current,
            "current_repodata.json.zst": lambda pub: zstd(pub.file("current_repodata.json")),
        }
        media = {**MEDIA_TYPES, **{k: "application/octet-stream" for k in etags}}
        return IndexFiles(files=files, media_types=media, lazy=lazy, etags=etags)


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
