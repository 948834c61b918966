"""The CRC-32 of a gzip member joined from parts: zlib's combine and the fallback agree with a CRC
of the joined bytes, for parts of every size (the trailer a client checks is made from them)."""

from __future__ import annotations

import os
import zlib

import pytest

from taipan.services import publication
from taipan.services.publication import _crc32_combine_by_zeros, crc32_combine


@pytest.mark.parametrize("sizes", [(0, 0), (1, 0), (0, 7), (5, 1), (1000, 3 << 20), ((1 << 20) + 3, 1 << 20)])
def test_combined_crc_is_that_of_the_joined_bytes(sizes):
    a, b = os.urandom(sizes[0]), os.urandom(sizes[1])
    want = zlib.crc32(a + b)
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == want
    assert _crc32_combine_by_zeros(zlib.crc32(a), zlib.crc32(b), len(b)) == want


def test_zlib_combine_is_used_here():
    """This machine's zlib is loaded (else a 1M-record index's gzip costs 0.35 s more per change)."""
    assert publication._COMBINE is not None
