"""Blob store on a local directory: blobs/<aa>/<sha256>, written via a temp file and rename."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1024 * 1024


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # Owner-only: blobs of private channels and half-written uploads are nobody else's business.
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.root / "tmp").mkdir(exist_ok=True, mode=0o700)
        for d in (self.root, self.root / "tmp"):
            _private(d, 0o700)

    def tighten(self) -> int:
        """Make every directory 0700 and every file 0600 (a store made before this rule, or copied
        in with looser modes); return how many were changed."""
        changed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            changed += _private(Path(dirpath), 0o700)
            changed += sum(_private(Path(dirpath) / f, 0o600) for f in filenames)
        return changed

    def _path(self, sha256: str) -> Path:
        if not _SHA_RE.match(sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def tempdir(self) -> Path:
        """A scratch directory on the same file system, so a finished upload is a rename away."""
        return self.root / "tmp"

    def put_file(self, sha256: str, src: Path, *, move: bool = False) -> None:
        dest = self._path(sha256)
        if dest.exists():
            return
        dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if move:  # src is ours, on the same file system (see tempdir): a rename is atomic
            os.chmod(src, 0o600)
            os.replace(src, dest)
            return
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=sha256[:8])  # 0600
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def exists(self, sha256: str) -> bool:
        return self._path(sha256).exists()

    def open(self, sha256: str) -> BinaryIO:
        return open(self._path(sha256), "rb")

    def local_path(self, sha256: str) -> Path | None:
        return self._path(sha256)

    def size(self, sha256: str) -> int:
        return self._path(sha256).stat().st_size

    def iter_bytes(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        with self.open(sha256) as fh:
            fh.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                chunk = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, sha256: str) -> None:
        try:
            self._path(sha256).unlink()
        except FileNotFoundError:
            pass


def _private(path: Path, mode: int) -> int:
    """chmod ``path`` to ``mode`` if it allows anyone but the owner anything; 1 if changed."""
    try:
        if path.stat().st_mode & 0o077:
            path.chmod(mode)
            return 1
    except FileNotFoundError:
        pass
    return 0
