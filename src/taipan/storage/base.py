"""The blob store: content-addressed bytes, keyed by sha256."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol


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
