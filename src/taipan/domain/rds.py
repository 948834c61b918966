"""R's serialization format (what saveRDS writes and readRDS reads): XDR, format version 2, for the
few kinds of values CRAN-like repositories publish: character, double, integer and logical vectors,
lists, with attributes (names, dim, dimnames, class, row.names). Pure.

A value is an ``RValue``; ``None`` in a vector is R's NA. Symbols are written in full each time
(never as references), which readers accept.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_NIL, _SYM, _LIST, _CHAR, _LGL, _INT, _REAL, _STR, _VEC = 254, 1, 2, 9, 10, 13, 14, 16, 19
_KINDS = {"character": _STR, "double": _REAL, "integer": _INT, "logical": _LGL, "list": _VEC}
_IS_OBJECT, _HAS_ATTR, _HAS_TAG = 1 << 8, 1 << 9, 1 << 10
_ASCII, _UTF8 = 64 << 12, 8 << 12
NA_INTEGER = -(2 ** 31)
NA_REAL = struct.pack(">Q", 0x7FF00000000007A2)  # R's NA_real_: a NaN with payload 1954
HEADER = b"X\n" + struct.pack(">iii", 2, 0x040202, 0x020300)  # format 2, written as by R 4.2.2


@dataclass(frozen=True)
class RValue:
    kind: str  # character | double | integer | logical | list
    items: Sequence[Any]
    attributes: tuple[tuple[str, RValue], ...] = field(default=())
    encoded: bool = False  # a character vector whose items are charsxp() bytes already


def character(items: Sequence[str | None], **attributes: RValue) -> RValue:
    return RValue("character", items, tuple(attributes.items()))


def character_encoded(items: Sequence[bytes], **attributes: RValue) -> RValue:
    """A character vector of strings encoded with charsxp() beforehand (e.g. once per index change)."""
    return RValue("character", items, tuple(attributes.items()), encoded=True)


def double(items: Sequence[float | None], **attributes: RValue) -> RValue:
    return RValue("double", items, tuple(attributes.items()))


def integer(items: Sequence[int | None], **attributes: RValue) -> RValue:
    return RValue("integer", items, tuple(attributes.items()))


def logical(items: Sequence[bool | None], **attributes: RValue) -> RValue:
    return RValue("logical", items, tuple(attributes.items()))


def rlist(items: Sequence[RValue], **attributes: RValue) -> RValue:
    return RValue("list", items, tuple(attributes.items()))


_NA_STRING = struct.pack(">ii", _CHAR, -1)  # NA_character_


def charsxp(value: str | None) -> bytes:
    """One string (None: NA) as serialized, for character_encoded()."""
    if value is None:
        return _NA_STRING
    data = value.encode()
    return struct.pack(">ii", _CHAR | (_ASCII if value.isascii() else _UTF8), len(data)) + data


def _char(out: list[bytes], value: str | None) -> None:
    out.append(charsxp(value))


def _write(out: list[bytes], value: RValue) -> None:
    flags = _KINDS[value.kind]
    if value.attributes:
        flags |= _HAS_ATTR
        if any(name == "class" for name, _ in value.attributes):
            flags |= _IS_OBJECT
    items = value.items
    out.append(struct.pack(">ii", flags, len(items)))
    if value.encoded:
        out.extend(items)
    elif value.kind == "character":
        cache: dict[str | None, bytes] = {None: _NA_STRING}  # repeated values are encoded once
        append = out.append
        for s in items:
            encoded = cache.get(s)
            if encoded is None:
                encoded = cache[s] = charsxp(s)
            append(encoded)
    elif value.kind == "double":
        out.extend(NA_REAL if x is None else struct.pack(">d", x) for x in items)
    elif value.kind in ("integer", "logical"):
        out.append(struct.pack(f">{len(items)}i", *(NA_INTEGER if x is None else int(x) for x in items)))
    else:
        for item in items:
            _write(out, item)
    if value.attributes:
        for name, attr in value.attributes:
            out.append(struct.pack(">ii", _LIST | _HAS_TAG, _SYM))
            _char(out, name)
            _write(out, attr)
        out.append(struct.pack(">i", _NIL))


def serialize(value: RValue) -> bytes:
    """The bytes of saveRDS(value, compress = FALSE); readRDS also reads them gzip-compressed."""
    out = [HEADER]
    _write(out, value)
    return b"".join(out)
