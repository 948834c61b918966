from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taipan.cli import config as cfg
from taipan.cli.main import main
from taipan.errors import InvalidInput, NotFound, TaipanError


def test_user_config_honours_repo_config_dir(isolated: Path) -> None:
    assert cfg.user_config_file() == isolated / ".conda" / "repo-cli-config.yaml"


def test_dotted_keys_set_get_remove() -> None:
    data: dict = {}
    cfg.set_key(data, "sites.prod.url", "https://x/api")
    cfg.set_key(data, "default_site", "prod")
    assert data == {"sites": {"prod": {"url": "https://x/api"}}, "default_site": "prod"}
    assert cfg.get_key(data, "sites.prod.url") == "https://x/api"
    cfg.remove_key(data, "sites.prod.url")
    assert data["sites"]["prod"] == {}
    with pytest.raises(NotFound):
        cfg.get_key(data, "sites.prod.url")
    with pytest.raises(NotFound):
        cfg.remove_key(data, "nothing.here")


def test_resolve_site_default_explicit_and_single() -> None:
    config = {"sites": {"a": {"url": "https://a/api"}, "b": {"url": "http://b:8/api/"}}, "default_site": "a"}
    assert cfg.resolve_site(config, None) == ("a", "https://a/api")
    assert cfg.resolve_site(config, "b") == ("b", "http://b:8/api")
    assert cfg.resolve_site({"sites": {"only": {"url": "https://o/api"}}}, None) == ("only", "https://o/api")


def test_resolve_site_errors_carry_the_setup_hint() -> None:
    with pytest.raises(TaipanError) as exc:
        cfg.resolve_site(dict(cfg.DEFAULT_CONFIG), None)
    assert exc.value.code == "no_site"
    assert "--set-site" in exc.value.hint and "sites.NAME.url" in exc.value.hint
    with pytest.raises(TaipanError, match="'nope' is not configured"):
        cfg.resolve_site({"sites": {"a": {"url": "https://a/api"}}}, "nope")


def test_validate_url() -> None:
    assert cfg.validate_url("https://h/api/") == "https://h/api"
    with pytest.raises(InvalidInput):
        cfg.validate_url("h/api")


def test_ssl_verify_order(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"sites": {"a": {"url": "https://a/api", "ssl_verify": "/ca.pem"}}, "ssl_verify": True}
    assert cfg.ssl_verify(config, "a", False) == "/ca.pem"
    assert cfg.ssl_verify(config, "a", True) is False
    assert cfg.ssl_verify({"ssl_verify": "false"}, None, False) is False
    monkeypatch.setenv("SSL_NO_VERIFY", "1")
    assert cfg.ssl_verify(config, "a", False) is False


def test_later_files_win(isolated: Path, tmp_path: Path) -> None:
    cfg.write_file(cfg.user_config_file(), {"sites": {"a": {"url": "https://a/api"}}, "default_site": "a"})
    cfg.write_file(cfg.system_config_file(), {"sites": {"b": {"url": "https://b/api"}}, "ssl_verify": False})
    merged = cfg.load_config()
    assert set(merged["sites"]) == {"a", "b"} and merged["ssl_verify"] is False and merged["oauth2"] is False


def test_config_command_set_get_remove(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--set", "sites.anaconda-server.url", "https://server.example.com/api",
                 "--set", "default_site", "anaconda-server", "--set", "oauth2", "true"]) == 0
    written = yaml.safe_load(cfg.user_config_file().read_text())
    assert written == {"sites": {"anaconda-server": {"url": "https://server.example.com/api"}},
                       "default_site": "anaconda-server", "oauth2": True}
    capsys.readouterr()
    assert main(["config", "--get", "default_site"]) == 0
    assert capsys.readouterr().out.strip() == "anaconda-server"
    assert main(["config", "--remove", "oauth2"]) == 0
    assert "oauth2" not in yaml.safe_load(cfg.user_config_file().read_text())
    assert main(["config", "--get", "nope"]) == 4
    assert main(["config", "--set", "sites.x.url", "not-a-url"]) == 2
    assert main(["config", "--set", "bogus", "1"]) == 0
    assert "not a known configuration key" in capsys.readouterr().err


def test_config_files_and_sources(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["config", "--set", "default_site", "a"])
    capsys.readouterr()
    assert main(["config", "--files"]) == 0
    out = capsys.readouterr().out
    assert f"User Config: {cfg.user_config_file()}" in out and "System Config:" in out
    assert main(["config", "--show-sources"]) == 0
    assert f"==> {cfg.user_config_file()} <==" in capsys.readouterr().out
    assert main(["config", "--show", "--json"]) == 0
    assert '"default_site": "a"' in capsys.readouterr().out


def test_config_without_action_is_a_usage_error() -> None:
    assert main(["config"]) == 2
