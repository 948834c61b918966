"""The family seam: what every artifact family (conda, python, cran, ...) tells the rest of Taipan.

Uploads, indexing, serving, listings, filters and mirrors ask a ``Family`` instead of testing
``if family == ...``. A family is pure (no I/O beyond reading the file it is given); the layers
above keep their own small registries for what is not pure (serving routes, upstream fetchers).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from taipan.domain import zstd_join


@dataclass(frozen=True)
class Artifact:
    """One uploaded file, read and validated by its family, ready to be stored.

    ``subdir`` is the index partition the file belongs to (a conda platform subdir, ``simple`` for
    Python, ``src/contrib`` for R sources, ...): partitions are disjoint across families, so a
    (channel, subdir) pair always names one family's index. ``ckey`` is unique in a channel and is the
    path, under the channel's package URL, where the file is served.
    """

    family: str
    name: str
    version: str
    subdir: str
    filename: str
    ckey: str
    record: dict[str, Any]
    meta: dict[str, Any]


@dataclass(frozen=True)
class Chunk:
    """Bytes in the blob store: their sha256 and size; for a part of a segmented file also
    ``deflate``: the sha256 and size of the same bytes as a raw deflate stream that ends in a sync
    flush (so that such streams concatenate into one), and the CRC-32 of the bytes; and ``zstd``:
    the sha256 and size of the same bytes as zstd blocks to join into one frame, and the window
    they need (see ``taipan.domain.zstd_join``)."""

    sha256: str
    size: int
    deflate: tuple[str, int, int] | None = None
    zstd: tuple[str, int, int] | None = None


def deflate(data: bytes, level: int) -> bytes:
    """A raw deflate stream of ``data`` ending in a sync flush (the form of ``Chunk.deflate``):
    such streams concatenate into one, which a final empty block ends."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)


@dataclass(frozen=True)
class Segmented:
    """A file made of parts in order: small literal bytes and stored chunks. Large indexes are
    published this way, so that a change rewrites only the parts it touched and nobody holds the
    whole file in memory."""

    parts: tuple[bytes | Chunk, ...]

    @property
    def size(self) -> int:
        return sum(len(p) if isinstance(p, bytes) else p.size for p in self.parts)


def zstd_joined(source: Segmented) -> Segmented:
    """``source`` as one zstd frame made of its parts' stored zstd blocks and its literal bytes as
    raw blocks. Every chunk must have its ``zstd`` blocks and follow literal bytes ending in
    ``zstd_join.JOINT`` (which the joint's reset blocks write)."""
    parts: list[bytes | Chunk] = []
    literal = bytearray()
    windows = []
    for part in source.parts:
        if isinstance(part, bytes):
            literal += part
            continue
        if part.zstd is None or not literal.endswith(zstd_join.JOINT):
            raise ValueError("a part without zstd blocks, or not after a joint")
        parts.append(zstd_join.raw_blocks(bytes(literal[:-len(zstd_join.JOINT)])) + zstd_join.RESET)
        parts.append(Chunk(part.zstd[0], part.zstd[1]))
        windows.append(part.zstd[2])
        literal.clear()
    parts.append(zstd_join.raw_blocks(bytes(literal)) + zstd_join.FRAME_END)
    parts.insert(0, zstd_join.frame_header(windows))
    return Segmented(tuple(parts))


@dataclass(frozen=True)
class Compressed:
    """A file that is another file of the same publication compressed (``codec``: bz2), streamed
    into the blob store on first request. (zstd files are joined from their parts' blocks:
    ``zstd_joined``.)"""

    source: str
    codec: str


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Addressed:
    """Content-addressed files of a partition, ``<prefix><sha256 hex><suffix>`` (CEP-16 shards):
    stored one by one, never listed in a manifest; a publication serves those that its ``listing``
    file (or the previous publication's) names, as ``digests(listing bytes)`` says."""

    prefix: str
    suffix: str
    listing: str
    media_type: str
    digests: Callable[[bytes], frozenset[str]]

    def digest_of(self, name: str) -> str | None:
        if not (name.startswith(self.prefix) and name.endswith(self.suffix)):
            return None
        digest = name[len(self.prefix):len(name) - len(self.suffix)]
        return digest if _SHA256_HEX.fullmatch(digest) else None


class ContentStore(Protocol):
    """Where an index writes bytes by their sha256 while it builds (the blob store). ``later``: an
    addressed file, which the store may write after the build returns (before the publication is
    shared), serving it from memory meanwhile."""

    def put(self, sha256: str, data: bytes, *, later: bool = False) -> None: ...

    def get(self, sha256: str) -> bytes:
        """Bytes put before (not ``later``)."""


@dataclass
class IndexFiles:
    """The files of one published partition: prepared bytes (or segmented files, or files compressed
    from another one), plus files derived only on demand.

    ``etags`` overrides the default per-publication ETag of a file. ``lazy`` builders see the
    prepared files and may call each other through the publication, never through a shared lock; a
    ``Compressed`` lazy entry is made from the stored files by any process, without a local build.
    """

    files: dict[str, bytes | Segmented | Compressed | Chunk]
    media_types: dict[str, str]
    lazy: dict[str, Callable[[Any], bytes] | Compressed] = field(default_factory=dict)
    etags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SbomDependency:
    """A dependency an artifact declares: its package name, the requirement as written, a purl."""

    name: str
    requirement: str
    purl: str | None = None


@dataclass(frozen=True)
class SbomInfo:
    """What an SBOM says of one artifact as a package; the SBOM service adds digests, files and
    vulnerabilities. ``license`` is the declared text; the service decides if it is SPDX."""

    name: str
    version: str
    purl: str
    license: str | None = None
    supplier: str | None = None
    homepage: str | None = None
    summary: str | None = None
    dependencies: tuple[SbomDependency, ...] = ()


class PartitionIndex(Protocol):
    """The incremental index of one partition: fed file rows, builds the partition's files.
    ``addressed``: its content-addressed files, if any (the same for every index of a family)."""

    addressed: Addressed | None

    def apply(self, rows: Mapping[str, tuple[str, bytes] | None]) -> None:
        """Apply ``{filename: (name, record_json) or None (removed)}`` from the change log."""

    def build(self, store: ContentStore) -> IndexFiles:
        """The partition's files now; large parts are written to ``store`` as they are made."""

    def snapshot(self) -> dict[str, Any] | None:
        """Right after ``build``: a small JSON-able description of the index that, together with the
        files that build returned (as stored), lets ``resume`` go on incrementally in another process
        or after a restart; None when the index cannot (it is then rebuilt from the file rows)."""

    def resume(self, snapshot: dict[str, Any], files: IndexFiles, read: Callable[[str], bytes]) -> None:
        """Make this fresh index what it was at ``snapshot``: ``files`` are that publication's files
        (segmented ones with their stored parts), ``read(name)`` gives one of its whole files."""


class HeldWhole:
    """For a ``PartitionIndex`` held whole in memory (a small one): it has no snapshot, and a new
    process rebuilds it from the file rows."""

    def snapshot(self) -> dict[str, Any] | None:
        return None

    def resume(self, snapshot: dict[str, Any], files: IndexFiles, read: Callable[[str], bytes]) -> None:
        raise NotImplementedError("an index held whole is rebuilt from the rows")


class Family(Protocol):
    """One artifact family. See the module docstring."""

    name: str
    title: str
    # `filetype` values of the conda-repo-cli upload form (and others) that mean this family.
    upload_types: frozenset[str]
    # First path segments under /api/repo/<channel>/ that this family serves.
    roots: frozenset[str]
    # Whether files of this family can be yanked (PEP 592) instead of removed.
    yankable: bool

    def sniff(self, filename: str, head: bytes, path: Path | None = None) -> bool:
        """A cheap guess from the name and first bytes (and, when given, the spooled file itself,
        e.g. to look for a member of a tarball): could this file be of this family?"""

    def read_upload(self, path: Path, filename: str, *, sha256: str, md5: str, size: int,
                    subdir: str | None = None) -> Artifact:
        """Read and validate an uploaded file (already hashed) completely; raise InvalidInput with a
        hint if it is bad. The record carries the digests and size in the family's own fields.
        ``subdir`` is a partition the client asked for (e.g. an R binary tree), when it may."""

    def install_command(self, name: str, repo_url: str) -> str:
        """How a user installs package ``name`` from the channel at ``repo_url`` (shown in the UI)."""

    def sbom_info(self, record: Mapping[str, Any], meta: Mapping[str, Any], *, channel_url: str,
                  subdir: str) -> SbomInfo | None:
        """The artifact as an SBOM package, or None when this family has no SBOM."""

    def sbom_files(self, path: Path, filename: str) -> list[tuple[str, str, str]]:
        """The files inside a stored artifact as ``(path, sha1, sha256)``, for its SBOM; [] when the
        artifact is a single document. (Optional: the SBOM service treats a family without it as [].)"""

    def version_key(self, version: str) -> Any:
        """A sort key ordering versions as this family's clients do."""

    def normalize_name(self, name: str) -> str:
        """A package name as this family compares names (PEP 503 for Python; as is for conda)."""

    def partition_index(self, subdir: str) -> PartitionIndex | None:
        """A fresh incremental index for one partition, or None if the family publishes no index."""

    def file_type(self, filename: str) -> str:
        """The `type` of a file in listings (conda-repo-cli's names, e.g. conda_package_2)."""

    def package_metadata(self, name: str, latest_meta: Mapping[str, Any], subdirs: list[str],
                         channel_path: str) -> dict[str, Any]:
        """The `metadata` of a package in listings, from its newest file's stored metadata."""

    def file_metadata(self, meta: Mapping[str, Any], record: Mapping[str, Any], *, filename: str,
                      channel_url: str, url: str) -> dict[str, Any]:
        """The `metadata` of one file in listings."""
