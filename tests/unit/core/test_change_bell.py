"""The change bell (storage/bell.py): one file of slots shared by the processes of a home."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import zlib
from pathlib import Path

from taipan.storage import bell as bell_module
from taipan.storage.bell import SLOT_SIZE, SLOTS, Bell, open_bell


def _other_process(run_dir: Path, code: str) -> str:
    """Run ``code`` with ``b = open_bell(run_dir)`` in a new Python process (its own hash seed)."""
    script = (f"from pathlib import Path\nfrom taipan.storage.bell import open_bell, Bell\n"
              f"b = open_bell(Path({str(run_dir)!r}))\n{code}")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_ring_in_another_process_is_seen_here(tmp_path: Path) -> None:
    run = tmp_path / "home" / "run"
    b = open_bell(run)
    assert b.shared and open_bell(run) is b  # mapped once per process
    before = b.seen("channel-a")
    _other_process(run, "b.ring('channel-a')")
    assert b.seen("channel-a") != before
    # The other way round, and the slot is the same in a process with another hash seed.
    b.ring("channel-b")
    assert _other_process(run, "print(b.seen('channel-b'), Bell.slot('channel-b'))") == \
        f"{b.seen('channel-b')} {Bell.slot('channel-b')}"
    assert Bell.slot("channel-b") == zlib.crc32(b"channel-b") % SLOTS


def test_the_file_is_private_and_of_a_fixed_size(tmp_path: Path) -> None:
    run = tmp_path / "run"
    open_bell(run).ring("x")
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert stat.S_IMODE((run / "bell").stat().st_mode) == 0o600
    assert (run / "bell").stat().st_size == SLOTS * SLOT_SIZE


def test_loose_modes_are_tightened(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o755)
    (run / "bell").write_bytes(b"")
    (run / "bell").chmod(0o644)
    run.chmod(0o755)
    open_bell(run)
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    assert stat.S_IMODE((run / "bell").stat().st_mode) == 0o600


def test_every_ring_leaves_a_value_no_reader_saw(tmp_path: Path) -> None:
    b = open_bell(tmp_path / "run")
    seen = {b.seen("c")}
    for _ in range(2000):
        b.ring("c")
        assert b.seen("c") not in seen and b.seen("c") != 0
        seen.add(b.seen("c"))


def test_racing_writers_never_write_the_same_value(tmp_path: Path) -> None:
    """Two writers that both read the slot before either wrote (two processes ringing at once): each
    leaves a value of its own, so a reader that noted the first one's sees the second one's too. (A
    counter read, incremented and written back would write the same value twice and lose a ring.)"""
    b = open_bell(tmp_path / "run")
    slot = Bell.slot("c")
    b.values[slot] = 41  # what both writers read
    first = b.ring("c")
    b.values[slot] = 41  # the second writer read it before the first wrote
    second = b.ring("c")
    assert first != second and 41 not in (first, second)


def test_channels_of_one_slot_ring_each_other_and_no_one_else(tmp_path: Path) -> None:
    b = open_bell(tmp_path / "run")
    slot = Bell.slot("c0")
    twin = next(f"c{i}" for i in range(1, 100000) if Bell.slot(f"c{i}") == slot)
    other = next(f"c{i}" for i in range(1, 100000) if Bell.slot(f"c{i}") != slot)
    twin_before, other_before = b.seen(twin), b.seen(other)
    b.ring("c0")
    assert b.seen(twin) != twin_before  # an extra look for the twin, never a missed one
    assert b.seen(other) == other_before


def test_an_unusable_run_dir_falls_back_to_polling_and_says_so_once(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "home").write_text("a file where the home's run dir would be")
    run = tmp_path / "home" / "run"
    with caplog.at_level(logging.INFO, logger=bell_module.__name__):
        b = open_bell(run)
        again = open_bell(run)
    assert again is b and not b.shared
    b.ring("c")  # rings nobody, breaks nothing
    assert b.seen("c") != 0
    logged = [r for r in caplog.records if "poll interval" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.INFO
    assert str(run / "bell") in logged[0].getMessage()
