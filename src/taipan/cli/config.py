"""`repo-cli-config.yaml`: where it lives, how the files merge, and which site a command talks to.

The file format and locations are conda-repo-cli's, so an existing configuration keeps working.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from taipan.errors import InvalidInput, NotFound, TaipanError

CONFIG_FILENAME = "repo-cli-config.yaml"
KNOWN_KEYS = ("auto_register", "default_site", "sites", "url", "ssl_verify", "oauth2")
DEFAULT_CONFIG: dict[str, Any] = {
    "sites": {}, "auto_register": True, "default_site": None, "url": None, "ssl_verify": True,
    "oauth2": False,
}


def user_config_dir() -> Path:
    """`~/.conda`, or `$REPO_CONFIG_DIR` when set (tests and shared machines use it)."""
    env = os.environ.get("REPO_CONFIG_DIR")
    return Path(env) if env else Path.home() / ".conda"


def user_config_file() -> Path:
    return user_config_dir() / CONFIG_FILENAME


def system_config_file() -> Path:
    root = os.environ.get("CONDA_ROOT") or sys.prefix
    return Path(root) / "etc" / "anaconda-client" / CONFIG_FILENAME


def search_path() -> list[Path]:
    """Files merged in order, later ones winning (conda-repo-cli's order, minus legacy dirs)."""
    paths = [user_config_file(), Path("/etc/anaconda-client") / CONFIG_FILENAME, system_config_file()]
    prefix = os.environ.get("CONDA_PREFIX")
    if prefix:
        paths.append(Path(prefix) / "etc" / "anaconda-client" / CONFIG_FILENAME)
    unique: list[Path] = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique


def read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaipanError(f"The configuration file {path} is not valid YAML: {exc}".splitlines()[0],
                          "Fix or remove the file", code="bad_config") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TaipanError(f"The configuration file {path} does not hold a mapping", "Fix or remove the file",
                          code="bad_config")
    return data


def write_file(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, default_flow_style=False), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a crash never leaves half a config behind


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def load_config() -> dict[str, Any]:
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in DEFAULT_CONFIG.items()}
    for path in search_path():
        _merge(merged, read_file(path))
    return merged


# -- dotted keys ------------------------------------------------------------------------------
def _unset(dotted: str) -> NotFound:
    return NotFound(f"The configuration key {dotted!r} is not set", "`conda-repo config --show` lists them")


def set_key(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def get_key(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise _unset(dotted)
        node = node[part]
    return node


def remove_key(data: dict[str, Any], dotted: str) -> None:
    parts = dotted.split(".")
    parent = get_key(data, ".".join(parts[:-1])) if len(parts) > 1 else data
    if not isinstance(parent, dict) or parts[-1] not in parent:
        raise _unset(dotted)
    del parent[parts[-1]]


def validate_url(url: Any) -> str:
    parsed = urlparse(str(url))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(f"{url!r} is not a valid site URL",
                           "Give the full API URL, such as https://server.example.com/api")
    return str(url).rstrip("/")


# -- the site a command talks to ---------------------------------------------------------------
NO_SITE_HINT = ("Run `conda-repo config --set-site DOMAIN`, or `conda-repo config --set sites.NAME.url "
                "https://DOMAIN/api` and `conda-repo config --set default_site NAME`")


def resolve_site(config: dict[str, Any], site: str | None) -> tuple[str | None, str]:
    """Return (site name, API base URL) for ``--site`` or the configured default."""
    sites = config.get("sites") or {}
    name = site or config.get("default_site")
    if name is None and not config.get("url") and len(sites) == 1:
        name = next(iter(sites))  # one site configured and no default: it is the only sensible choice
    if name is not None:
        entry = sites.get(name)
        if not isinstance(entry, dict) or not entry.get("url"):
            known = ", ".join(sorted(sites)) or "none"
            raise TaipanError(f"The site {name!r} is not configured (known sites: {known})", NO_SITE_HINT,
                              code="no_site")
        return name, validate_url(entry["url"])
    if config.get("url"):
        return None, validate_url(config["url"])
    raise TaipanError("No repository site is configured", NO_SITE_HINT, code="no_site")


def site_setting(config: dict[str, Any], site: str | None, key: str) -> Any:
    sites = config.get("sites") or {}
    entry = sites.get(site) if site else None
    if isinstance(entry, dict) and key in entry:
        return entry[key]
    return config.get(key)


def ssl_verify(config: dict[str, Any], site: str | None, insecure: bool) -> bool | str:
    """--insecure, then SSL_NO_VERIFY=1, then the `ssl_verify` setting (bool or CA bundle path)."""
    if insecure or os.environ.get("SSL_NO_VERIFY") == "1":
        return False
    value = site_setting(config, site, "ssl_verify")
    if value is None:
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0"):
        return False
    return value if isinstance(value, str) and value.lower() not in ("true", "yes", "1") else bool(value)
