"""Token files, laid out so conda finds them too.

Each token is written to the anaconda-client token dir (which conda reads to put `/t/<token>/` into
channel URLs) and to `<config dir>/tokens`, under `quote_plus(url) + ".token"`, once for the API URL
and once for `url + "/repo"`: conda matches the second against `.../api/repo/<channel>` URLs.
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


def token_dirs() -> list[Path]:
    binstar = Path(platformdirs.user_data_dir("binstar", "ContinuumIO"))
    return [binstar, user_config_dir() / "tokens"]


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
        directory.mkdir(parents=True, exist_ok=True)
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
    for directory in token_dirs():
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
