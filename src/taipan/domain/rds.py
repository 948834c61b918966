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


# -- reading (what a mirror needs of an upstream's Meta/archive.rds) ------------------------------------

_REF, _ALTREP = 255, 238
_SKIP_SPECIAL = {242: None, 251: None, 252: None, 253: None}  # empty env, missing/unbound, base env


@dataclass
class RObject:
    """A value read back: ``items`` are str/None (character), numbers (double, integer, logical) or
    RObjects (list); ``attributes`` by name."""

    kind: str
    items: list[Any]
    attributes: dict[str, Any] = field(default_factory=dict)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.refs = data, 0, []

    def int(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("truncated R serialization")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def string(self) -> str | None:
        flags, n = self.int(), self.int()
        if flags & 0xFF != _CHAR:
            raise ValueError(f"expected a string, found type {flags & 0xFF}")
        return None if n == -1 else self.bytes(n).decode("utf-8", "replace")

    def attrs(self, flags: int) -> dict[str, Any]:
        if not flags & _HAS_ATTR:
            return {}
        pairs = self.item()
        return dict(pairs.items) if isinstance(pairs, RObject) and pairs.kind == "pairlist" else {}

    def item(self) -> Any:  # noqa: C901 - one branch per R type
        flags = self.int()
        kind = flags & 0xFF
        if kind == _NIL or kind in _SKIP_SPECIAL:
            return None
        if kind == _REF:
            index = flags >> 8 or self.int()
            return self.refs[index - 1]
        if kind == _SYM:
            name = self.string()
            self.refs.append(name)
            return name
        if kind == _LIST:  # a pairlist: attributes, tags
            out = []
            while kind == _LIST:
                attrs = self.attrs(flags)
                tag = self.item() if flags & _HAS_TAG else None
                out.append((tag, self.item()))
                del attrs
                flags = self.int()
                kind = flags & 0xFF
            if kind != _NIL:
                raise ValueError("an improper pairlist")
            return RObject("pairlist", out)
        if kind == _ALTREP:
            info, state, attrs = self.item(), self.item(), self.item()
            cls = info.items[0][1] if isinstance(info, RObject) and info.items else None
            if cls in ("compact_intseq", "compact_realseq"):
                n, start, step = (int(x) for x in state.items[:3])
                items: list[Any] = [start + i * step for i in range(n)]
                obj = RObject("integer" if cls == "compact_intseq" else "double", items)
            elif isinstance(cls, str) and cls.startswith("wrap_"):
                obj = state.items[0]
            else:
                raise ValueError(f"unsupported ALTREP class {cls}")
            if isinstance(attrs, RObject):
                obj.attributes.update(dict(attrs.items))
            return obj
        if kind in (_STR, _VEC, _LGL, _INT, _REAL):
            n = self.int()
            if kind == _STR:
                items = [self.string() for _ in range(n)]
            elif kind == _VEC:
                items = [self.item() for _ in range(n)]
            elif kind == _REAL:
                items = list(struct.unpack_from(f">{n}d", self.bytes(8 * n)))
            else:
                items = [None if x == NA_INTEGER else x for x in struct.unpack_from(f">{n}i", self.bytes(4 * n))]
            name = {_STR: "character", _VEC: "list", _LGL: "logical", _INT: "integer", _REAL: "double"}[kind]
            return RObject(name, items, self.attrs(flags))
        raise ValueError(f"unsupported R type {kind}")


def unserialize(data: bytes) -> Any:
    """Read what serialize() (or R's saveRDS, XDR format 2 or 3, uncompressed) wrote; ValueError
    for anything else. Environments, closures and most ALTREP classes are not supported."""
    if data[:2] != b"X\n":
        raise ValueError("not an XDR R serialization")
    r = _Reader(data)
    r.pos = 2
    version = r.int()
    r.int(), r.int()
    if version == 3:
        r.bytes(r.int())  # the native encoding
    elif version != 2:
        raise ValueError(f"R serialization format {version} is not supported")
    try:
        return r.item()
    except (struct.error, IndexError, AttributeError, TypeError) as exc:
        raise ValueError(f"malformed R serialization: {exc}") from exc
