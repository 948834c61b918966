from __future__ import annotations

import stat
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from taipan.cli import tokens
from taipan.errors import InvalidInput

URL = "http://127.0.0.1:8080/api"


def test_token_file_names_follow_quote_plus() -> None:
    assert tokens.token_filename(URL) == "http%3A%2F%2F127.0.0.1%3A8080%2Fapi.token"
    assert tokens.token_filename(URL + "/repo") == quote_plus(URL + "/repo") + ".token"


def test_store_writes_both_names_in_both_dirs_with_mode_600(isolated: Path) -> None:
    written = tokens.store_token(URL, "abc123")
    dirs = tokens.token_dirs()
    assert dirs == [isolated / ".conda" / "tokens",  # ours
                    isolated / ".config" / "binstar",  # read by conda >= 24.1
                    isolated / ".local" / "share" / "binstar"]  # read by older conda
    assert sorted(written) == sorted(d / n for d in dirs for n in (quote_plus(URL) + ".token",
                                                                   quote_plus(URL + "/repo") + ".token"))
    for path in written:
        assert path.read_text() == "abc123"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tokens.load_token(URL) == "abc123"
    assert tokens.remove_token(URL) is True
    assert tokens.load_token(URL) is None and not any(p.exists() for p in written)


def test_empty_token_file_is_ignored_and_removed(isolated: Path) -> None:
    path = tokens.token_dirs()[0] / tokens.token_filename(URL)
    path.parent.mkdir(parents=True)
    path.write_text("  \n")
    assert tokens.load_token(URL) is None
    assert not path.exists()


def test_token_option_accepts_token_or_file(tmp_path: Path) -> None:
    assert tokens.token_from_option("abc-123_X") == "abc-123_X"
    f = tmp_path / "tok"
    f.write_text("from-file\n")
    assert tokens.token_from_option(str(f)) == "from-file"
    with pytest.raises(InvalidInput):
        tokens.token_from_option("./missing.txt")
    f.write_text("")
    with pytest.raises(InvalidInput):
        tokens.token_from_option(str(f))
