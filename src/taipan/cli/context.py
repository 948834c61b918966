"""What every command gets: parsed options, output, configuration, the site and an API client.

Command modules (including ones added later, e.g. mirror) use only this object, so how the site,
the token and TLS verification are chosen lives in one place.
"""

from __future__ import annotations

import getpass
import sys
from argparse import Namespace
from typing import Any

from taipan.cli import config as cfg
from taipan.cli.output import Output
from taipan.cli.tokens import load_token, token_from_option
from taipan.client import TaipanClient
from taipan.errors import InvalidInput


class Context:
    def __init__(self, args: Namespace, out: Output) -> None:
        self.args = args
        self.out = out
        self._config: dict[str, Any] | None = None
        self._site: tuple[str | None, str] | None = None
        self._client: TaipanClient | None = None

    # -- configuration ----------------------------------------------------------------------
    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            self._config = cfg.load_config()
        return self._config

    @property
    def site_name(self) -> str | None:
        return self._resolve()[0]

    @property
    def url(self) -> str:
        """The API base URL (ends in /api); raises the 'no site configured' error."""
        return self._resolve()[1]

    def _resolve(self) -> tuple[str | None, str]:
        if self._site is None:
            self._site = cfg.resolve_site(self.config, getattr(self.args, "site", None))
        return self._site

    # -- credentials and client ---------------------------------------------------------------
    @property
    def token_given(self) -> bool:
        return bool(getattr(self.args, "token", None))

    def stored_token(self) -> str | None:
        if self.token_given:
            return token_from_option(self.args.token)
        return load_token(self.url)

    @property
    def client(self) -> TaipanClient:
        if self._client is None:
            verify = cfg.ssl_verify(self.config, self.site_name, getattr(self.args, "insecure", False))
            self._client = TaipanClient(self.url, token=self.stored_token(), verify=verify)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- talking to the person at the keyboard ---------------------------------------------------
    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty()

    def ask(self, prompt: str) -> str:
        """Prompt on stderr and read one line; works with a terminal and with piped input."""
        self.out.err.file.write(prompt)
        self.out.err.file.flush()
        line = sys.stdin.readline()
        if not line:
            raise InvalidInput("No answer was given (end of input)", "Run the command in a terminal, "
                               "or pipe the answers in", code="no_input")
        return line.rstrip("\r\n")

    def ask_secret(self, prompt: str) -> str:
        if self.interactive:
            return getpass.getpass(prompt, stream=sys.stderr)
        return self.ask(prompt)

    def confirm(self, prompt: str, default: bool = True) -> bool:
        answer = self.ask(prompt).strip().lower()
        if not answer:
            return default
        if answer in ("y", "yes"):
            return True
        if answer in ("n", "no"):
            return False
        raise InvalidInput(f"Please answer y or n, not {answer!r}", "Run the command again", code="no_input")
