"""Reading a conda package's metadata (info/index.json, info/about.json) from an untrusted archive.

Uploads are untrusted: a few hundred kilobytes of bzip2 or zstd can expand to gigabytes and cost
many seconds of CPU, and the JSON inside can be anything. So the reader decompresses at most
``MAX_DECOMPRESSED`` bytes, refuses ratios no real package has, stops at the end of the info/
section, and accepts only JSON that every later step (the database, the JSON encoders, conda
clients) can carry.
"""

from __future__ import annotations

import bz2
import io
import json
import math
import re
import tarfile
import zipfile
from typing import Any, BinaryIO

from taipan.domain.member_digests import MemberDigests
from taipan.errors import InvalidInput

# Bytes of the info tar of a .conda (or of a .tar.bz2 up to the end of its info/ files) that are
# decompressed at most. Real info sections are far smaller: index.json, about.json and paths.json.
MAX_DECOMPRESSED = 64 * 1024 * 1024
# Decompressed bytes per compressed byte, checked once past the first MAX_RATIO_FREE bytes.
# Real archives stay well under 50:1; decompression bombs are in the thousands.
MAX_RATIO = 200
MAX_RATIO_FREE = 1024 * 1024
# index.json and about.json: real ones are a few kilobytes.
MAX_INFO_JSON = 1024 * 1024
MAX_JSON_DEPTH = 32
WANTED = ("info/index.json", "info/about.json")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = 2**63


def too_large(filename: str, what: str) -> InvalidInput:
    return InvalidInput(f"{filename} is too large when decompressed ({what})",
                        "Real conda packages stay far below these limits; rebuild the package",
                        code="too_large_decompressed")


class _Counted(io.RawIOBase):
    """A read-only stream that counts what passes and stops at ``limit`` bytes."""

    def __init__(self, src: Any, limit: int, filename: str, what: str) -> None:
        self.src, self.limit, self.count = src, limit, 0
        self.filename, self.what = filename, what
        self.compressed: _Counted | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        data = self.src.read(len(buf))
        self.count += len(data)
        if self.count > self.limit:
            raise too_large(self.filename, f"more than {self.limit // 2**20} MiB of {self.what}")
        if (self.compressed is not None and self.count > MAX_RATIO_FREE
                and self.count > MAX_RATIO * max(1, self.compressed.count)):
            raise too_large(self.filename, f"a compression ratio above {MAX_RATIO}:1")
        buf[:len(data)] = data
        return len(data)


def _bounded(raw: Any, decompress: Any, filename: str) -> io.BufferedReader:
    """``decompress(counted raw)`` wrapped so that both sides are counted and bounded."""
    compressed = _Counted(raw, MAX_DECOMPRESSED, filename, "compressed metadata")
    out = _Counted(decompress(io.BufferedReader(compressed)), MAX_DECOMPRESSED, filename, "metadata")
    out.compressed = compressed
    return io.BufferedReader(out)


def _info_stream(fileobj: BinaryIO, filename: str) -> tuple[io.BufferedReader, Any]:
    """The decompressed tar stream holding info/, and what to close afterwards."""
    if filename.endswith(".tar.bz2"):
        return _bounded(fileobj, bz2.BZ2File, filename), None
    import zstandard

    zf = zipfile.ZipFile(fileobj)
    members = [n for n in zf.namelist() if n.startswith("info-") and n.endswith(".tar.zst")]
    if len(members) != 1:
        zf.close()
        raise InvalidInput(f"{filename} has no info component", "The .conda archive is malformed",
                           code="invalid_package")
    # The window bound keeps a crafted frame from asking for gigabytes of decoder memory.
    dctx = zstandard.ZstdDecompressor(max_window_size=2**27)
    return _bounded(zf.open(members[0]), dctx.stream_reader, filename), zf


def read_package_info(fileobj: BinaryIO, filename: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read ``info/index.json`` and ``info/about.json`` from a package; raise InvalidInput if it is
    corrupt, too large when decompressed, or carries JSON the index cannot hold."""
    found: dict[str, bytes] = {}
    closer = None
    try:
        stream, closer = _info_stream(fileobj, filename)
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            seen_info = False
            for member in tar:
                if not member.name.startswith("info/"):
                    if seen_info:  # a .tar.bz2 keeps info/ together: nothing more to find
                        break
                    continue
                seen_info = True
                if member.name in WANTED and member.isfile():
                    if member.size > MAX_INFO_JSON:
                        raise InvalidInput(f"{member.name} of {filename} is larger than {MAX_INFO_JSON} bytes",
                                           "Real package metadata is a few kilobytes; rebuild the package",
                                           code="invalid_package")
                    extracted = tar.extractfile(member)
                    found[member.name] = extracted.read() if extracted else b""
                    if len(found) == len(WANTED):
                        break
    except InvalidInput:
        raise
    except Exception as exc:  # any decoding failure (tar, zip, bz2, zstd, EOF) means a bad archive
        raise InvalidInput(
            f"{filename} is not a readable conda package ({type(exc).__name__}: {str(exc)[:200]})",
            "The archive is corrupt or truncated; rebuild it or upload it again",
            code="invalid_package",
        ) from exc
    finally:
        if closer is not None:
            closer.close()
    index = load_info_json(found["info/index.json"], "info/index.json", filename) \
        if "info/index.json" in found else None
    if not isinstance(index, dict):
        raise InvalidInput(f"{filename} has no info/index.json object",
                           "Conda packages carry their metadata in info/index.json; rebuild the package",
                           code="invalid_package")
    about = load_info_json(found["info/about.json"], "info/about.json", filename) \
        if "info/about.json" in found else {}
    return index, about if isinstance(about, dict) else {}


def load_info_json(raw: bytes, member: str, filename: str) -> Any:
    """Parse metadata JSON strictly: UTF-8, no NaN/Infinity, 64-bit integers, no NUL or lone
    surrogates in strings, bounded nesting. What passes can be stored and served by any encoder."""
    def bad(why: str) -> InvalidInput:
        return InvalidInput(f"{member} of {filename} is not valid package metadata: {why}",
                            "Rebuild the package with conda-build or rattler-build", code="invalid_package")

    def no_constants(name: str) -> Any:
        raise bad(f"{name} is not a JSON value")

    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
    except InvalidInput:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad(f"{type(exc).__name__}: {str(exc)[:100]}") from exc
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise bad(f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((k, depth + 1) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str):
            if "\x00" in item or _SURROGATE.search(item):
                raise bad("a string holds a NUL character or a lone surrogate")
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not -_INT64 <= item < _INT64:
                raise bad("an integer does not fit in 64 bits")
        elif isinstance(item, float) and not math.isfinite(item):
            raise bad("a number is out of range")
    return value


# A package with more installed files than this lists only the first ones in its SBOM.
MAX_SBOM_FILES = 100_000
MAX_SBOM_BYTES = 16 * 1024**3


def package_files(fileobj: BinaryIO, filename: str) -> list[tuple[str, str, str]]:
    """The files a stored package installs (what its info/paths.json lists): ``(path, sha1,
    sha256)`` each, hashed from the archive itself (SPDX wants SHA-1, paths.json has SHA-256 only)."""
    from conda_package_streaming.package_streaming import stream_conda_component

    found = MemberDigests(MAX_SBOM_BYTES, lambda: too_large(filename, "more than 16 GiB of files"))
    # A .conda's pkg component holds the installed files; a .tar.bz2 yields every member (info/ skipped).
    stream = stream_conda_component(filename, fileobj, "pkg")
    try:
        for tar, member in stream:
            if not member.isfile() or member.name.startswith("info/"):
                continue
            extracted = tar.extractfile(member)
            found.add(member.name, extracted if extracted is not None else io.BytesIO())
            if len(found.files) >= MAX_SBOM_FILES:
                break
    finally:
        stream.close()
    return found.files
