"""Secrets at rest (mirror upstream credentials): Fernet (AES-128-CBC + HMAC-SHA256) from `cryptography`,
imported when a secret is first sealed or opened (it adds ~6 MB to a process; a server process that
never runs a mirror with credentials does not need it).

The key comes from the setting ``secrets.key`` (``TAIPAN_SECRETS__KEY``, a urlsafe base64 Fernet key);
without it, one is generated once into ``$TAIPAN_HOME/secret.key`` (mode 0600) and read from there.
Every process of one installation (serve, workers, migrations) must see the same key: with
several hosts, set ``TAIPAN_SECRETS__KEY`` on all of them.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from pathlib import Path
from typing import Any

from taipan.errors import TaipanError

KEY_FILE = "secret.key"


def _fernet_key(key: bytes | str) -> bytes:
    """``key`` when it is a Fernet key (the urlsafe base64 of 32 bytes), checked as ``Fernet`` does."""
    raw = key.encode() if isinstance(key, str) else key
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except (binascii.Error, ValueError, TypeError):
        pass
    raise TaipanError("The secrets key is not a valid Fernet key",
                      "Set TAIPAN_SECRETS__KEY to a key made with `python -c 'from "
                      "cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`",
                      code="invalid_setting")


class SecretBox:
    """Seals and opens secrets with one key, checked when the box is made (a server with a bad key
    does not start); ``cryptography`` is imported on first use."""

    def __init__(self, key: bytes | str) -> None:
        self._key = _fernet_key(key)
        self._made: Any = None

    def _fernet(self) -> Any:
        if self._made is None:
            from cryptography.fernet import Fernet

            self._made = Fernet(self._key)
        return self._made

    def seal(self, plain: str) -> str:
        return self._fernet().encrypt(plain.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet().decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise TaipanError("A stored secret cannot be decrypted with this server's key",
                              "Use the same TAIPAN_SECRETS__KEY (or $TAIPAN_HOME/secret.key) on every "
                              "server process, or set the mirror's source again with --update --source",
                              code="secret_unreadable", status=500) from exc


def load_key(home: Path, configured: str = "") -> bytes:
    """The configured key, else the one in ``home/secret.key``, made (0600) on first use."""
    if configured:
        return configured.strip().encode()
    path = home / KEY_FILE
    for _ in range(50):
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            break
        if key:
            if path.stat().st_mode & 0o077:  # restored or copied with loose modes: owner-only again
                path.chmod(0o600)
            return key
        time.sleep(0.05)  # another process is writing it right now
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = base64.urlsafe_b64encode(os.urandom(32))  # what Fernet.generate_key() makes
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return load_key(home)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    return key


def secret_box(home: Path, configured: str = "") -> SecretBox:
    return SecretBox(load_key(home, configured))
