"""Server-wide settings an admin changes at run time (`conda-repo admin`, /api/system/settings).

Each setting has a name, a type, a default taken from the static configuration, and a parser that
turns what a client sends (JSON, or the text typed after `--set KEY`) into a valid value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taipan.errors import InvalidInput

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str | int) and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise InvalidInput(f"Invalid value {str(value)[:80]!r} for {key}", "Use true or false",
                       code="invalid_setting")


@dataclass(frozen=True)
class SettingSpec:
    name: str
    help: str
    parse: Callable[[str, Any], Any]


SETTINGS: dict[str, SettingSpec] = {spec.name: spec for spec in (
    SettingSpec("user_channel_autocreate",
                "create a channel named after each user on the user's first login (true/false)", parse_bool),
)}


def parse_setting(key: str, value: Any) -> Any:
    """The valid value of setting ``key`` from ``value``; InvalidInput for unknown keys or bad values."""
    spec = SETTINGS.get(key)
    if spec is None:
        raise InvalidInput(f"Unknown setting {str(key)[:80]!r}",
                           f"Known settings: {', '.join(sorted(SETTINGS))}", code="unknown_setting")
    return spec.parse(key, value)
