"""One zstd frame joined from parts compressed on their own (RFC 8878), so that a large index's
``.zst`` is re-made at the cost of its changed parts only, and is still **one** frame (rattler
reads only the first frame of ``repodata.json.zst``; conda's reader too).

A part is compressed alone, as a frame of its own (no checksum, no content size); its blocks are
kept without that frame's header, with the last-block flag cleared (``part_blocks``). Blocks
compressed alone never reach back before their own start, and their first block defines its own
literal and sequence tables (the format allows "repeat the previous block's table" modes only after
a block of the same frame defined one). What they do assume is the state every frame starts with:
the repeat offsets 1, 4 and 8. So in the joined frame each part is preceded by ``RESET``: two tiny
blocks whose sequences, new offsets 8, then 4, then 1, leave exactly that state behind whatever
came before. Those sequences copy bytes, so ``RESET`` writes ``JOINT`` (18 spaces), which the
uncompressed file carries in the same place (JSON allows white space between tokens).

Literal bytes between parts go as raw blocks. The frame header declares a window as large as the
largest part's (at least 128 KiB, the largest block), and neither checksum nor content size.
"""

from __future__ import annotations

from collections.abc import Iterable

import zstandard

MAGIC = b"\x28\xb5\x2f\xfd"
MAX_BLOCK = 1 << 17
MIN_WINDOW_LOG = 17
# Windows of parts are at most this (a part is a bucket of a subdir's records: rarely above a few
# MiB); decoders accept 128 MiB and more by default.
MAX_WINDOW_LOG = 23
# What RESET writes, and the uncompressed file holds before each part.
JOINT = b" " * 18


def _block_header(last: bool, kind: int, size: int) -> bytes:
    return ((size << 3) | (kind << 1) | int(last)).to_bytes(3, "little")


def _sequences_block(literals: bytes, new_offsets: tuple[int, ...], match: int = 3) -> bytes:
    """A compressed block of raw literals and sequences that each copy ``match`` bytes from a new
    offset (the first sequence takes every literal, the others none). Their codes are the same in
    each block, so the tables are RLE and the bit stream holds only the offsets' extra bits."""
    assert len(literals) < 32 and 3 <= match < 35
    codes = {(o + 3).bit_length() - 1 for o in new_offsets}
    assert len(codes) == 1 and len(new_offsets) < 128
    of_code = codes.pop()
    ll_codes = {len(literals)} | ({0} if len(new_offsets) > 1 else set())
    assert len(ll_codes) == 1 or not literals, "one literal length code per block"
    bits = 1  # the end mark; the first value the decoder reads is the highest below it
    for offset in new_offsets:
        bits = (bits << of_code) | (offset + 3 - (1 << of_code))
    stream = bits.to_bytes((bits.bit_length() + 7) // 8, "little")
    rle = (1 << 6) | (1 << 4) | (1 << 2)  # literal lengths, offsets, match lengths: RLE
    body = (bytes([len(literals) << 3]) + literals  # raw literals, one-byte header
            + bytes([len(new_offsets), rle, len(literals), of_code, match - 3]) + stream)
    return _block_header(False, 2, len(body)) + body


# Nine literal spaces, then copies at offsets 8 (code 3), then 4 and 1 (code 2): 18 spaces, and
# the repeat offsets are 1, 4, 8 again.
RESET = _sequences_block(JOINT[:9], (8,)) + _sequences_block(b"", (4, 1))


def part_blocks(data: bytes, level: int) -> tuple[bytes, int]:
    """``data`` compressed alone: its blocks (none marked last) and the window they need."""
    window_log = max(10, min(MAX_WINDOW_LOG, (max(len(data), 1) - 1).bit_length()))
    params = zstandard.ZstdCompressionParameters.from_level(level, source_size=len(data), window_log=window_log,
                                                           write_content_size=False, write_checksum=False)
    frame = zstandard.ZstdCompressor(compression_params=params).compress(data)
    return _strip(frame)


def _strip(frame: bytes) -> tuple[bytes, int]:
    if frame[:4] != MAGIC:
        raise ValueError("not a zstd frame")
    descriptor = frame[4]
    single, checksum, dict_id = (descriptor >> 5) & 1, (descriptor >> 2) & 1, descriptor & 3
    if single or checksum or dict_id or descriptor >> 6:
        raise ValueError("a part must have a window, and no checksum, dictionary or content size")
    exponent, mantissa = frame[5] >> 3, frame[5] & 7
    window = (1 << (10 + exponent)) + ((1 << (10 + exponent)) >> 3) * mantissa
    pos, out = 6, bytearray()
    while True:
        header = int.from_bytes(frame[pos:pos + 3], "little")
        kind, size = (header >> 1) & 3, header >> 3
        end = pos + 3 + (1 if kind == 1 else size)
        out += (header & ~1).to_bytes(3, "little") + frame[pos + 3:end]
        pos = end
        if header & 1:
            break
    if pos != len(frame):
        raise ValueError("a part must be one frame")
    return bytes(out), window


def frame_header(windows: Iterable[int]) -> bytes:
    """The joined frame's header: a window for the largest part's (a power of two)."""
    window_log = max([MIN_WINDOW_LOG, *((max(w, 1) - 1).bit_length() for w in windows)])
    return MAGIC + b"\x00" + bytes([(window_log - 10) << 3])


def raw_blocks(data: bytes) -> bytes:
    """Literal bytes as raw blocks (none marked last)."""
    return b"".join(_block_header(False, 0, len(data[i:i + MAX_BLOCK])) + data[i:i + MAX_BLOCK]
                    for i in range(0, len(data), MAX_BLOCK))


# The end of the joined frame: an empty raw block marked last.
FRAME_END = _block_header(True, 0, 0)
