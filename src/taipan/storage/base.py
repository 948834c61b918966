"""The blob store: content-addressed bytes, keyed by sha256."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class StoredItem:
    """A blob (``name`` is its sha256) or a scratch file (``name`` is its file name)."""

    name: str
    size: int
    mtime: float  # seconds since the epoch: when it was last written or touched


class BlobStore(Protocol):
    def put_file(self, sha256: str, src: Path, *, move: bool = False) -> None:
        """Store the file at ``src`` (already hashed) under ``sha256``; atomic, idempotent."""

    def tempdir(self) -> Path:
        """Where uploads are spooled before they are hashed and put."""

    def exists(self, sha256: str) -> bool: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def local_path(self, sha256: str) -> Path | None:
        """A path the web server can send directly, when the backend has one."""

    def iter_bytes(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def delete(self, sha256: str) -> None: ...

    def size(self, sha256: str) -> int: ...

    def touch(self, sha256: str) -> bool:
        """Mark an existing blob as just used (so a cleanup leaves it alone); False if absent."""

    def iter_blobs(self) -> Iterator[StoredItem]:
        """Every stored blob, in no particular order."""

    def stat(self, sha256: str) -> StoredItem | None: ...

    def scratch_files(self) -> Iterator[StoredItem]:
        """Files in the scratch space: uploads being spooled, downloads in progress, leftovers."""

    def remove_scratch(self, name: str, older_than: float) -> bool:
        """Delete a scratch file not written since ``older_than`` (epoch seconds); True if deleted."""

    def reclaim(self, sha256: str, older_than: float, unused: Callable[[], bool]) -> bool:
        """Delete a blob that was not written or touched since ``older_than`` and that ``unused()``
        (asked once the blob is out of reach) still confirms nothing references; a blob touched
        or referenced meanwhile is put back. True if deleted."""
