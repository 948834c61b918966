"""`CHANNEL[/SUB][::PACKAGE[/VERSION[/FILE]]]`: the package spec of copy, move, remove and --list-files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taipan.domain.names import split_channel_path
from taipan.errors import InvalidInput

SPEC_HINT = "Write CHANNEL[/SUBCHANNEL]::PACKAGE[/VERSION[/FILENAME]], e.g. snakes::hello/1.0"


@dataclass(frozen=True)
class PackageSpec:
    channel: str
    subchannel: str | None = None
    package: str | None = None
    version: str | None = None
    filename: str | None = None

    @property
    def channel_path(self) -> str:
        return f"{self.channel}/{self.subchannel}" if self.subchannel else self.channel

    def __str__(self) -> str:
        text = self.channel_path
        if self.package:
            text += "::" + "/".join(p for p in (self.package, self.version, self.filename) if p)
        return text

    @classmethod
    def parse(cls, text: str, *, need_package: bool = False) -> PackageSpec:
        channel_part, sep, package_part = text.strip().partition("::")
        if not channel_part:
            raise InvalidInput(f"Invalid package spec {text!r}: the channel is missing", SPEC_HINT,
                               code="invalid_spec")
        try:
            channel, sub = split_channel_path(channel_part)
        except InvalidInput as exc:
            raise InvalidInput(f"Invalid package spec {text!r}: {exc.message}", SPEC_HINT,
                               code="invalid_spec") from exc
        if not sep or not package_part:
            if need_package:
                raise InvalidInput(f"Invalid package spec {text!r}: no package given", SPEC_HINT,
                                   code="invalid_spec")
            return cls(channel, sub)
        parts = package_part.split("/")
        if len(parts) > 3 or any(not p for p in parts):
            raise InvalidInput(f"Invalid package spec {text!r}", SPEC_HINT, code="invalid_spec")
        parts += [None] * (3 - len(parts))  # type: ignore[list-item]
        return cls(channel, sub, parts[0], parts[1], parts[2])


def file_name(item: dict[str, Any]) -> str:
    """A file item's file name: the last part of its ckey (`<subdir>/<fn>`)."""
    for key in ("ckey", "filename", "fn"):
        if item.get(key):
            return str(item[key]).rsplit("/", 1)[-1]
    return str(item.get("name", ""))


def _record(item: dict[str, Any]) -> dict[str, Any]:
    meta = item.get("metadata") or {}
    for key in ("repodata_record.json", "index.json"):
        if isinstance(meta.get(key), dict):
            return meta[key]
    return meta if isinstance(meta, dict) else {}


def file_field(item: dict[str, Any], key: str) -> Any:
    """A field of a file item, looked up at the top level, then in its index record."""
    if item.get(key) not in (None, ""):
        return item[key]
    value = _record(item).get(key)
    if value is None and isinstance(item.get("metadata"), dict):
        value = item["metadata"].get(key) or item["metadata"].get(key.capitalize())
    return value


def file_package(item: dict[str, Any]) -> Any:
    # A file item's own "name" may be the file name; "package" or the index record names the package.
    return item.get("package") or _record(item).get("name") or item.get("name")


def file_platform(item: dict[str, Any]) -> str | None:
    subdir = file_field(item, "subdir") or file_field(item, "platform")
    if subdir:
        return str(subdir)
    ckey = str(item.get("ckey") or "")
    return ckey.split("/", 1)[0] if "/" in ckey else None


def matches(spec: PackageSpec, item: dict[str, Any]) -> bool:
    """Version and file name are matched here, exactly, as the server filters only by package."""
    if spec.version and str(file_field(item, "version")) != spec.version:
        return False
    return not (spec.filename and file_name(item) != spec.filename)
