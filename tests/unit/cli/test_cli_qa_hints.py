"""Mistakes a user plausibly makes get one line that names what to run (QA pass on the seed doc)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from taipan.cli.exitcodes import ExitCode
from taipan.cli.main import main


def test_site_url_without_api_suffix_says_so(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated, "https://repo.example.com")
    # What Taipan (or any web server) answers for a path it has no route for.
    mock_server(lambda r: httpx.Response(404, json={"code": "not_found", "message": "Not Found",
                                                    "hint": "Check the URL", "detail": "Not Found"}))
    assert main(["channel", "--list"]) == ExitCode.NOT_FOUND
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no API endpoint GET /channels" in err and "/api" in err.split("hint:")[1]


def test_domain_not_found_keeps_the_server_message(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated)
    mock_server(lambda r: httpx.Response(404, json={"code": "channel_not_found", "hint": "List them",
                                                    "message": "Channel 'nochan' does not exist"}))
    assert main(["channel", "--show", "nochan"]) == ExitCode.NOT_FOUND
    assert capsys.readouterr().err.strip() == "error: Channel 'nochan' does not exist (hint: List them)"


@pytest.mark.parametrize(("code", "expected"), [
    ("authentication_required", "conda-repo login"), ("invalid_token", "conda-repo login"),
    ("token_not_found", "conda-repo auth --list"),
])
def test_server_http_hints_become_cli_hints(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                           capsys: pytest.CaptureFixture[str], code: str, expected: str) -> None:
    write_site(isolated)
    status = 404 if code == "token_not_found" else 401
    mock_server(lambda r: httpx.Response(status, json={"code": code, "message": "Nope",
                                                       "hint": "pass a token in the X-Auth header"}))
    main(["auth", "--remove", "abc"])
    err = capsys.readouterr().err
    assert expected in err and "X-Auth" not in err


def test_removed_token_given_with_t_says_so(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                            capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated)
    mock_server(lambda r: httpx.Response(401, json={"code": "invalid_token", "message": "The token is not valid",
                                                    "hint": "Log in again or create a new token"}))
    assert main(["-t", "abcdef", "whoami"]) == ExitCode.UNAUTHORIZED
    err = capsys.readouterr().err
    assert "-t was removed or never existed" in err and "conda-repo auth --create" in err


def test_huge_max_age_is_a_usage_error_not_a_crash(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated)
    seen = mock_server(lambda r: httpx.Response(200, json={"scopes": ["channel:view"], "token": "t", "id": "1"}))
    assert main(["auth", "--create", "--max-age", "99999999999999"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "--max-age must be between" in err and "Unexpected" not in err
    assert seen == []  # refused before anything was sent


def test_default_site_that_is_not_configured_warns(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--set", "sites.prod.url", "https://repo.example.com/api"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert main(["config", "--set", "default_site", "prdo"]) == 0
    assert "The site 'prdo' is not configured" in capsys.readouterr().err
    assert main(["config", "--set", "default_site", "prod"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_site_url_without_api_warns(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--set", "sites.prod.url", "https://repo.example.com"]) == 0
    assert "does not end in /api" in capsys.readouterr().err


def test_show_sources_without_any_file_says_so(isolated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--show-sources"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "No configuration file exists yet" in out.err and "--set-site" in out.err


def test_global_options_after_the_command(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated)
    seen = mock_server(lambda r: httpx.Response(200, json={"name": "lua", "owners": []}))
    # Typed the way people type: the option at the end. Before, argparse said "unrecognized arguments".
    assert main(["channel", "--show", "lua", "-v", "--token", "abc123"]) == 0
    assert "GET https://repo.example.com/api/channels/lua" in capsys.readouterr().err
    assert seen[-1].headers["X-Auth"] == "abc123"
    # Where a command uses the short option itself, it keeps its own meaning.
    from taipan.cli.main import build_parser

    args = build_parser().parse_args(["-t", "tok", "upload", "f.conda", "-t", "conda", "--show-traceback"])
    assert args.token == "tok" and args.package_type == "conda" and args.show_traceback
    args = build_parser().parse_args(["auth", "--create", "-s", "channel:view", "--site", "prod"])
    assert args.scopes == ["channel:view"] and args.site == "prod"
    args = build_parser().parse_args(["-s", "prod", "-v", "channel", "--list"])
    assert args.site == "prod" and args.verbose
