"""`conda-repo upload` without -c: default_channels entries of other servers are not this site's channels."""

from __future__ import annotations

from pathlib import Path

import httpx
from test_cli_wizard_upload import tiny_tar_bz2

from taipan.cli.condarc import site_channel_name
from taipan.cli.main import main

API = "https://repo.example.com/api"


def test_site_channel_name() -> None:
    assert site_channel_name("snakes", API) == "snakes"
    assert site_channel_name("snakes/dev", API) == "snakes/dev"
    assert site_channel_name("https://repo.example.com/api/repo/lua/", API) == "lua"
    assert site_channel_name("https://repo.example.com/api/repo/t/abc123/lua/dev", API) == "lua/dev"
    assert site_channel_name("https://repo.anaconda.com/pkgs/main", API) is None
    assert site_channel_name("https://other.example.com/api/repo/lua", API) is None
    assert site_channel_name("https://repo.example.com/api/repo", API) is None


def test_stock_anaconda_default_channels_do_not_pick_a_channel_here(  # type: ignore[no-untyped-def]
        write_site, mock_server, isolated: Path, tmp_path: Path) -> None:
    # A stock Anaconda .condarc: uploading must not go to a Taipan channel that happens to be called "main".
    write_site(isolated, API)
    (isolated / ".condarc").write_text("default_channels:\n  - https://repo.anaconda.com/pkgs/main\n"
                                       "  - https://repo.anaconda.com/pkgs/r\n"
                                       f"  - {API}/repo/snakes\n")
    seen = mock_server(lambda r: httpx.Response(201, json={}))
    f = tiny_tar_bz2(tmp_path / "a-1-0.tar.bz2")
    assert main(["upload", str(f)]) == 0
    assert [r.url.path for r in seen] == ["/api/channels/snakes/artifacts"]


def test_only_foreign_default_channels_fall_back_to_the_account(  # type: ignore[no-untyped-def]
        write_site, mock_server, isolated: Path, tmp_path: Path) -> None:
    write_site(isolated, API)
    (isolated / ".condarc").write_text("default_channels:\n  - https://repo.anaconda.com/pkgs/main\n")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/account":
            return httpx.Response(200, json={"default_channel_name": "mine"})
        return httpx.Response(201, json={})

    seen = mock_server(handler)
    f = tiny_tar_bz2(tmp_path / "a-1-0.tar.bz2")
    assert main(["upload", str(f)]) == 0
    assert [r.url.path for r in seen] == ["/api/account", "/api/channels/mine/artifacts"]
