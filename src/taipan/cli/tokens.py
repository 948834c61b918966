"""Token files, laid out so conda finds them too.

Each token is written to the anaconda-client ("binstar") token directories, which conda reads to put
`/t/<token>/` into channel URLs, and to `<config dir>/tokens`, under `quote_plus(url) + ".token"`,
once for the API URL and once for `url + "/repo"`: conda matches token files to channel URLs by
prefix, so the second one covers `.../api/repo/<channel>`.

Where conda looks (its `conda/gateways/anaconda_client.py`, `_get_binstar_token_directory`):
conda >= 24.1 reads `$BINSTAR_CONFIG_DIR/data` when that variable is set, and otherwise
`platformdirs.user_config_dir("binstar", "ContinuumIO")` (`~/.config/binstar` on Linux); older conda
reads `$BINSTAR_CONFIG_DIR/data` too, and otherwise `user_data_dir("binstar", "ContinuumIO")`
(`~/.local/share/binstar`). We write all the places that apply, and logout removes them all.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote_plus

import platformdirs

from taipan.cli.config import user_config_dir
from taipan.errors import InvalidInput

# conda accepts only these characters between /t/ and the next slash.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]+$")


def _unique(paths: list[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))  # on macOS the config and data dirs of binstar are one


def legacy_binstar_dir() -> Path:
    """Where conda before 24.1 (and anaconda-client) read tokens without BINSTAR_CONFIG_DIR."""
    return Path(platformdirs.user_data_dir("binstar", "ContinuumIO"))


def conda_token_dir() -> Path:
    """Where current conda reads anaconda-client tokens."""
    env = os.environ.get("BINSTAR_CONFIG_DIR")
    if env:
        return Path(env) / "data"
    return Path(platformdirs.user_config_dir("binstar", "ContinuumIO"))


def token_dirs() -> list[Path]:
    """Where tokens are written: ours, current conda's and, unless BINSTAR_CONFIG_DIR points both
    conda generations elsewhere, older conda's."""
    dirs = [user_config_dir() / "tokens", conda_token_dir()]
    if not os.environ.get("BINSTAR_CONFIG_DIR"):
        dirs.append(legacy_binstar_dir())
    return _unique(dirs)


def all_token_dirs() -> list[Path]:
    """Every place a token of ours may have been written (what logout cleans)."""
    return _unique([*token_dirs(), legacy_binstar_dir()])


def token_filename(url: str) -> str:
    return quote_plus(url) + ".token"


def _names(url: str) -> list[str]:
    url = url.rstrip("/")
    return [token_filename(url), token_filename(url + "/repo")]


def write_private(path: Path, text: str) -> None:
    """Write a secret with mode 0600 from the start, so it is never readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through os.open


def store_token(url: str, token: str) -> list[Path]:
    written = []
    for directory in token_dirs():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in _names(url):
            write_private(directory / name, token)
            written.append(directory / name)
    return written


def load_token(url: str) -> str | None:
    name = token_filename(url.rstrip("/"))
    for directory in token_dirs():
        path = directory / name
        if path.is_file():
            token = path.read_text(encoding="utf-8").strip()
            if token:
                return token
            path.unlink()  # an empty token file only confuses conda
    return None


def remove_token(url: str) -> bool:
    removed = False
    for directory in all_token_dirs():
        for name in _names(url):
            path = directory / name
            if path.exists():
                path.unlink()
                removed = True
    return removed


def token_from_option(value: str) -> str:
    """`-t` takes a token or the path of a file holding one."""
    path = Path(value).expanduser()
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
    else:
        token = value.strip()
        if not _TOKEN_RE.match(token):
            raise InvalidInput(f"{value!r} is neither a token nor a readable file",
                               "Pass the token itself or the path of a file that holds it")
    if not token:
        raise InvalidInput(f"The token file {value} is empty", "Write the token into the file")
    return token
