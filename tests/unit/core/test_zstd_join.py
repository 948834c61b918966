"""Parts compressed on their own joined into one zstd frame: what the reset blocks are for."""

from __future__ import annotations

import random

import pytest
import zstandard

from taipan.domain import zstd_join as zj


def _parts(seed: int) -> list[bytes]:
    """Parts that start with repeats at the distances of a frame's initial repeat offsets (1, 4, 8;
    a compressor codes those as "repeat offset" matches) and end with a long-distance match (which
    leaves other repeat offsets behind in the decoder)."""
    rng = random.Random(seed)
    out = []
    for _ in range(rng.randint(2, 6)):
        noise = rng.randbytes(rng.randint(0, 3000))
        start = rng.choice([b"a" * 40, b"abcd" * 10, b"abcdefgh" * 10])
        out.append(start + b"q" * rng.randint(0, 300_000) + noise + noise[-500:])
    return out


def _join(parts: list[bytes], level: int, reset: bytes, joint: bytes) -> tuple[bytes, bytes]:
    encoded = [zj.part_blocks(p, level) for p in parts]
    frame = bytearray(zj.frame_header(w for _, w in encoded))
    plain = bytearray()
    head = b'{"head":' + b"x" * 200_000  # literal bytes longer than one block
    frame += zj.raw_blocks(head)
    plain += head
    for part, (blocks, _) in zip(parts, encoded, strict=True):
        frame += reset + blocks
        plain += joint + part
    return bytes(frame + zj.FRAME_END), bytes(plain)


@pytest.mark.parametrize("level", [1, 3, 19])
def test_joined_parts_are_one_frame_of_the_same_bytes(level):
    for seed in range(40):
        frame, plain = _join(_parts(seed), level, zj.RESET, zj.JOINT)
        reader = zstandard.ZstdDecompressor().decompressobj()
        assert reader.decompress(frame) == plain and reader.eof and not reader.unused_data


def test_without_the_reset_the_same_parts_decode_wrong():
    """The control: these parts do depend on the initial repeat offsets."""
    wrong = 0
    for seed in range(40):
        frame, plain = _join(_parts(seed), 3, b"", b"")
        try:
            wrong += zstandard.ZstdDecompressor().decompressobj().decompress(frame) != plain
        except zstandard.ZstdError:
            wrong += 1
    assert wrong > 20, wrong


def test_a_part_must_be_a_plain_frame():
    with pytest.raises(ValueError):
        zj._strip(zstandard.ZstdCompressor(write_checksum=True).compress(b"x" * 100))
    with pytest.raises(ValueError):
        zj._strip(b"not zstd")
