"""Digests of the files inside an archive, for SBOMs: ``(path, sha1, sha256)`` per member (SPDX
wants SHA-1; package indexes give SHA-256), read as a stream and bounded in total bytes."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import BinaryIO


class MemberDigests:
    """Collects member digests; ``too_large()`` is raised once more than ``max_bytes`` were read."""

    def __init__(self, max_bytes: int, too_large: Callable[[], Exception]) -> None:
        self.files: list[tuple[str, str, str]] = []
        self._left = max_bytes
        self._too_large = too_large

    def add(self, name: str, fh: BinaryIO) -> None:
        sha1, sha256 = hashlib.sha1(usedforsecurity=False), hashlib.sha256()
        while chunk := fh.read(1024 * 1024):
            self._left -= len(chunk)
            if self._left < 0:
                raise self._too_large()
            sha1.update(chunk)
            sha256.update(chunk)
        self.files.append((name, sha1.hexdigest(), sha256.hexdigest()))
