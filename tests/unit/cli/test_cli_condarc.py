from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taipan.cli import condarc
from taipan.errors import NotFound, TaipanError


def test_wizard_settings_and_alias() -> None:
    settings = condarc.wizard_settings("https://server.example.com:8443/api", ["snakes", "web"], ["extra"])
    assert settings == {"channel_alias": "https://server.example.com:8443/api/repo",
                        "default_channels": ["snakes", "web"], "channels": ["defaults", "extra"]}


def test_apply_keeps_other_keys_and_restore_is_byte_exact(tmp_path: Path) -> None:
    rc = tmp_path / ".condarc"
    original = b"# my settings\nchannels:\n  - conda-forge   # comment\nshow_channel_urls: true\n"
    rc.write_bytes(original)
    backup = condarc.apply_settings(rc, condarc.wizard_settings("http://h/api", ["a"], []))
    assert backup.read_bytes() == original
    data = yaml.safe_load(rc.read_text())
    assert data == {"channels": ["defaults"], "show_channel_urls": True,
                    "channel_alias": "http://h/api/repo", "default_channels": ["a"]}
    condarc.restore(rc)
    assert rc.read_bytes() == original


def test_restore_without_backup(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        condarc.restore(tmp_path / ".condarc")


def test_default_channels_condarc_env_wins(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / ".condarc").write_text("default_channels: [home-one]\n")
    monkeypatch.delenv("CONDARC")
    assert condarc.condarc_default_channels() == ["home-one"]
    other = isolated / "other.condarc"
    other.write_text("default_channels:\n  - https://h/api/repo/snakes/lua\n")
    monkeypatch.setenv("CONDARC", str(other))
    assert condarc.condarc_default_channels() == ["https://h/api/repo/snakes/lua"]
    assert condarc.channel_name_from("https://h/api/repo/snakes/lua") == "snakes/lua"


def test_broken_condarc_is_reported(isolated: Path) -> None:
    (isolated / ".condarc").write_text("a: [b\n")
    with pytest.raises(TaipanError, match="not valid YAML"):
        condarc.condarc_default_channels()


def test_wizard_path_choices(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert condarc.wizard_condarc_path(None, False, False) == isolated / ".condarc"  # $CONDARC
    assert condarc.wizard_condarc_path("/x/rc", False, False) == Path("/x/rc")
    with pytest.raises(TaipanError, match="No conda environment"):
        condarc.wizard_condarc_path(None, False, True)
    monkeypatch.setenv("CONDA_PREFIX", "/envs/e")
    assert condarc.wizard_condarc_path(None, False, True) == Path("/envs/e/.condarc")
    monkeypatch.setenv("CONDA_ROOT", "/opt/conda")
    assert condarc.wizard_condarc_path(None, True, False) == Path("/opt/conda/.condarc")
