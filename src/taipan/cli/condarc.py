"""Reading and writing `.condarc` with PyYAML, so neither upload nor the wizard needs conda installed."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from taipan.errors import NotFound, TaipanError


def user_condarc() -> Path:
    return Path.home() / ".condarc"


def read_condarc(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except yaml.YAMLError as exc:
        raise TaipanError(f"{path} is not valid YAML", "Fix the file or restore it",
                          code="bad_condarc") from exc
    return data if isinstance(data, dict) else {}


def condarc_default_channels() -> list[str]:
    """`default_channels` as conda would see it: ~/.condarc, overridden by $CONDARC."""
    channels: list[str] = []
    paths = [user_condarc()]
    if os.environ.get("CONDARC"):
        paths.append(Path(os.environ["CONDARC"]).expanduser())
    for path in paths:
        value = read_condarc(path).get("default_channels")
        if isinstance(value, list) and value:
            channels = [str(c) for c in value]
    return channels


def channel_name_from(entry: str) -> str:
    """`https://host/api/repo/snakes` or `snakes` -> `snakes` (default_channels may hold URLs)."""
    if "://" in entry:
        path = urlsplit(entry).path.rstrip("/")
        marker = "/api/repo/"
        return path.split(marker, 1)[1] if marker in path else path.rsplit("/", 1)[-1]
    return entry


def site_channel_name(entry: str, api_url: str) -> str | None:
    """A default_channels entry as a channel of the site at ``api_url``, or None if it is elsewhere.

    Bare names are relative to channel_alias (the wizard points it here); URLs count only when they
    are under this site's /api/repo, e.g. not the https://repo.anaconda.com/pkgs/main of a stock condarc.
    """
    if "://" not in entry:
        return entry.strip("/") or None
    alias, url = urlsplit(channel_alias(api_url)), urlsplit(entry)
    if (url.scheme, url.netloc) != (alias.scheme, alias.netloc):
        return None
    rest = url.path.rstrip("/")
    if not rest.startswith(alias.path + "/"):
        return None
    parts = rest[len(alias.path) + 1:].split("/")
    if len(parts) > 2 and parts[0] == "t":  # .../api/repo/t/<token>/<channel>
        parts = parts[2:]
    return "/".join(parts) or None


def wizard_condarc_path(file: str | None, system: bool, env: bool) -> Path:
    if file:
        return Path(file).expanduser()
    if system:
        root = os.environ.get("CONDA_ROOT")
        if not root and os.environ.get("CONDA_EXE"):
            root = str(Path(os.environ["CONDA_EXE"]).resolve().parent.parent)
        return Path(root or sys.prefix) / ".condarc"
    if env:
        prefix = os.environ.get("CONDA_PREFIX")
        if not prefix:
            raise TaipanError("No conda environment is active", "Activate one, or use --file PATH",
                              code="no_env")
        return Path(prefix) / ".condarc"
    return Path(os.environ["CONDARC"]).expanduser() if os.environ.get("CONDARC") else user_condarc()


def channel_alias(api_url: str) -> str:
    parts = urlsplit(api_url)
    return f"{parts.scheme}://{parts.netloc}/api/repo"


def wizard_settings(api_url: str, default_channels: list[str], channels: list[str]) -> dict[str, Any]:
    return {"channel_alias": channel_alias(api_url), "default_channels": list(default_channels),
            "channels": ["defaults", *channels]}


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".backup")


def apply_settings(path: Path, settings: dict[str, Any]) -> Path:
    """Back the file up byte for byte, then rewrite it with ``settings`` merged in; return the backup."""
    backup = backup_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        shutil.copyfile(path, backup)
    else:
        backup.write_bytes(b"")  # "there was nothing": restoring gives an empty, equivalent condarc
    data = read_condarc(path)
    data.update(settings)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), encoding="utf-8")
    os.replace(tmp, path)
    return backup


def restore(path: Path) -> Path:
    backup = backup_path(path)
    if not backup.is_file():
        raise NotFound(f"There is no backup {backup} to restore",
                       "The wizard makes one when it changes the file")
    shutil.copyfile(backup, path)
    return backup
