"""Blob store on a local directory: blobs/<aa>/<sha256>, written via a temp file and rename."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from taipan.storage.base import StoredItem

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
        self._restore_held()

    def _restore_held(self) -> None:
        """Put back blobs a cleanup had taken out of reach when its process died (see reclaim):
        the next cleanup decides about them again."""
        for entry in os.scandir(self.root / "tmp"):
            name = entry.name
            if name.startswith("reclaim-") and _SHA_RE.match(sha := name[8:72]):
                try:
                    # ctime: the rename into tmp; older than a minute is not a reclaim in progress
                    if entry.stat().st_ctime < time.time() - 60:
                        self._path(sha).parent.mkdir(exist_ok=True, mode=0o700)
                        _put_back(Path(entry.path), self._path(sha))
                except FileNotFoundError:
                    continue

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
        if self.touch(sha256):  # already stored: mark it used, so a cleanup in progress keeps it
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

    def touch(self, sha256: str) -> bool:
        try:
            os.utime(self._path(sha256))
            return True
        except FileNotFoundError:  # absent, or being reclaimed right now: the caller writes it anew
            return False

    def stat(self, sha256: str) -> StoredItem | None:
        try:
            st = self._path(sha256).stat()
        except FileNotFoundError:
            return None
        return StoredItem(sha256, st.st_size, st.st_mtime)

    def iter_blobs(self) -> Iterator[StoredItem]:
        for prefix in sorted(os.scandir(self.root), key=lambda e: e.name):
            if len(prefix.name) != 2 or not prefix.is_dir(follow_symlinks=False):
                continue
            for entry in os.scandir(prefix.path):
                if _SHA_RE.match(entry.name) and entry.name.startswith(prefix.name):
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    yield StoredItem(entry.name, st.st_size, st.st_mtime)

    def scratch_files(self) -> Iterator[StoredItem]:
        for entry in os.scandir(self.root / "tmp"):
            if entry.name.startswith("reclaim-"):  # blobs a cleanup holds, not scratch
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    yield StoredItem(entry.name, st.st_size, st.st_mtime)
            except FileNotFoundError:
                continue

    def remove_scratch(self, name: str, older_than: float) -> bool:
        if "/" in name or name in ("", ".", "..") or name.startswith("reclaim-"):
            raise ValueError(f"not a scratch file name: {name!r}")
        path = self.root / "tmp" / name
        try:
            if path.stat().st_mtime >= older_than:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def reclaim(self, sha256: str, older_than: float, unused: Callable[[], bool]) -> bool:
        path = self._path(sha256)
        # Out of reach first (a rename is atomic): a writer that touches the blob from now on finds
        # it missing and stores it again; one that touched it before shows in the mtime below.
        hold = self.root / "tmp" / f"reclaim-{sha256}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, hold)
        except FileNotFoundError:
            return False
        try:
            # Touched before it went out of reach, referenced now, or stored anew meanwhile: keep.
            if hold.stat().st_mtime >= older_than or not unused() or path.exists():
                _put_back(hold, path)
                return False
            hold.unlink()
        except FileNotFoundError:  # a starting process put it back (see _restore_held): keep it
            return False
        except BaseException:
            _put_back(hold, path)  # e.g. the database check failed: keep the blob
            raise
        return True

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


def _put_back(hold: Path, path: Path) -> None:
    """Return a blob the cleanup took out of reach; if it was stored anew meanwhile (same bytes,
    same name), the new copy stays and the held one goes."""
    try:
        os.link(hold, path)
    except FileExistsError:
        pass
    os.unlink(hold)
