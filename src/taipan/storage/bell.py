"""The change bell: how processes on one machine tell each other at once that a channel changed.

Every process of one home (each worker of a ``taipan serve``, several ``taipan serve`` processes,
``taipan worker``, ``taipan cve``) maps the same small file, ``$TAIPAN_HOME/run/bell`` (0600, in a
0700 directory): SLOTS slots of 8 bytes, a channel's slot chosen by a stable hash of its id (CRC-32;
channels that share a slot only cost each other an extra look). A process that committed changes
of a channel's index log *rings* its slot: writes a value that was never there before (64 random
bits). A reader notes the slot's value before it looks at the log, and treats what it read then as
current only while the slot still holds that value, so a ring during the look is not lost.

Why random values: two writers racing must each leave a value that differs from what any reader
noted before (a counter read, incremented and written back could write the same value twice). A
torn write or read can only make a reader see a value it never noted, which costs one extra look,
never a missed one: the log in the database stays the truth, the bell only says when to look again.

Reading is one index into a ``memoryview`` of the mapping (tens of nanoseconds: it is on the path
of every index request answered from memory). When the file cannot be made or mapped (a read-only
home, ...), ``open_bell`` logs it once and returns a bell that never rings: processes then see each
other's changes within the indexer's poll interval, as processes on other machines always do.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import zlib
from pathlib import Path

log = logging.getLogger(__name__)

SLOTS = 256
SLOT_SIZE = 8
FILE_NAME = "bell"


class Bell:
    """The slots of one bell. ``values[slot]`` is what a reader compares (see the module docstring)."""

    def __init__(self, values: memoryview, path: Path | None = None) -> None:
        self.values = values
        self.path = path

    @property
    def shared(self) -> bool:
        """Does ringing reach other processes (False: a private stand-in, see ``open_bell``)?"""
        return self.path is not None

    @staticmethod
    def slot(channel_id: str) -> int:
        """The channel's slot: the same in every process (not Python's salted ``hash``)."""
        return zlib.crc32(channel_id.encode()) % SLOTS

    def ring(self, channel_id: str) -> int:
        """Say that the channel's index log moved (call after the commit); the value written. It
        does not depend on what the slot held: two writers racing never write the same value."""
        slot = self.slot(channel_id)
        value = self.values[slot]
        while value == self.values[slot] or value == 0:
            value = int.from_bytes(os.urandom(SLOT_SIZE), "little")
        self.values[slot] = value
        return value

    def seen(self, channel_id: str) -> int:
        return self.values[self.slot(channel_id)]


def silent_bell() -> Bell:
    """A bell of this process alone: never rung by others (processes rely on polling then)."""
    return Bell(memoryview(bytearray(SLOTS * SLOT_SIZE)).cast("Q"))


_opened: dict[Path, Bell] = {}
_guard = threading.Lock()


def open_bell(run_dir: Path) -> Bell:
    """The bell of the home whose run directory is ``run_dir`` (made 0700; the file 0600), mapped
    once per process; a silent one, logged once at info, when it cannot be used."""
    path = run_dir / FILE_NAME
    with _guard:
        bell = _opened.get(path)
        if bell is None:
            bell = _opened[path] = _map(path)
        return bell


def _map(path: Path) -> Bell:
    size = SLOTS * SLOT_SIZE
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.parent.stat().st_mode & 0o077:
            path.parent.chmod(0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o077:
                os.fchmod(fd, 0o600)
            if st.st_size < size:  # made just now (another process may be doing the same: it only grows)
                os.ftruncate(fd, size)
            mapped = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
    except (OSError, ValueError) as exc:
        log.info("changes reach other processes of this home within the poll interval only: cannot use %s (%s)",
                 path, exc)
        return silent_bell()
    return Bell(memoryview(mapped).cast("Q"), path)
