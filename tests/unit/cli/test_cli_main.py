from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from taipan.cli import commands
from taipan.cli.exitcodes import ExitCode, exit_code_for
from taipan.cli.main import build_parser, load_command_modules, main
from taipan.errors import Conflict, NotFound, TaipanError, Unauthenticated

COMMANDS = ["admin", "auth", "channel", "config", "copy", "login", "logout", "move", "remove", "search", "upload",
            "whoami", "wizard"]


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert "conda-repo Command line client (version" in capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert f"usage: conda-repo {command}" in capsys.readouterr().out


def test_no_command_prints_help_and_usage_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitCode.USAGE
    assert "COMMAND" in capsys.readouterr().err


def test_no_site_configured(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["channel", "--list"]) == ExitCode.NOT_CONFIGURED
    err = capsys.readouterr().err
    assert "No repository site is configured" in err and "config --set-site" in err
    assert len(err.strip().splitlines()) == 1


def test_command_modules_are_discovered(write_site, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert {m.rsplit(".", 1)[1] for m in load_command_modules()} >= {"channel", "config", "wizard"}
    # A module dropped into the package later (e.g. mirror) is picked up without registration.
    (tmp_path / "zzextra.py").write_text(
        "def add_parser(sub):\n"
        "    p = sub.add_parser('zzextra', help='extra')\n"
        "    p.set_defaults(func=lambda c, a: 42)\n")
    monkeypatch.setattr(commands, "__path__", [*commands.__path__, str(tmp_path)])
    assert "zzextra" in build_parser().format_help()
    write_site(Path.home())
    assert main(["zzextra"]) == 42
    sys.modules.pop("taipan.cli.commands.zzextra", None)


def test_cli_runs_without_server_dependencies() -> None:
    # `pip install taipan` has only httpx, rich, pyyaml and platformdirs: no command may need more.
    blocked = ["fastapi", "sqlalchemy", "pydantic", "rattler", "starlette", "uvicorn", "alembic", "conda"]
    code = ("import sys\n"
            f"for m in {blocked!r}: sys.modules[m] = None\n"
            "from taipan.cli.main import main\n"
            f"sys.exit(sum(main([c, '--help']) for c in {COMMANDS!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "could not be loaded" not in proc.stderr, proc.stderr


def test_exit_codes() -> None:
    assert exit_code_for(NotFound("x")) == ExitCode.NOT_FOUND == 4
    assert exit_code_for(Conflict("x")) == ExitCode.CONFLICT == 5
    assert exit_code_for(Unauthenticated("x")) == ExitCode.UNAUTHORIZED == 3
    assert exit_code_for(TaipanError("x", code="server_error", status=500)) == ExitCode.SERVER_ERROR


def test_401_without_tty_fails_with_one_line(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                             capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated)
    mock_server(lambda r: httpx.Response(401, json={"code": "token_expired", "message": "The token expired",
                                                    "hint": "Log in again"}))
    assert main(["channel", "--list"]) == ExitCode.UNAUTHORIZED
    err = capsys.readouterr().err
    # The server's hint speaks HTTP; the CLI names the command to run instead.
    assert err.strip() == "error: The token expired (hint: Sign in again with `conda-repo login`)"


def test_401_with_token_option_names_the_token(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated)
    mock_server(lambda r: httpx.Response(403, json={"code": "forbidden", "message": "No", "hint": ""}))
    assert main(["-t", "abc", "channel", "--list"]) == ExitCode.FORBIDDEN
    assert "The provided token does not allow you to perform this operation" in capsys.readouterr().err


def test_401_on_a_tty_signs_in_and_retries(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated)

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/auth/login":
            return httpx.Response(200, json={"token": "sess", "roles": ["user"], "username": "u"})
        if path == "/api/account/tokens" and request.method == "GET":
            return httpx.Response(200, json={"items": []})
        if path == "/api/account/scopes":
            return httpx.Response(200, json={"scopes": ["channel:view"]})
        if path == "/api/account/tokens":
            return httpx.Response(200, json={"token": "newtoken", "id": "1"})
        if request.headers.get("X-Auth") == "newtoken":
            return httpx.Response(200, json={"total_count": 0, "items": []})
        return httpx.Response(401, json={"code": "authentication_required", "message": "Sign in", "hint": ""})

    mock_server(handler)
    stdin = io.StringIO("u\n")
    stdin.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr("getpass.getpass", lambda prompt, stream=None: "pw")
    assert main(["channel", "--list", "--json"]) == 0
    captured = capsys.readouterr()
    assert "requires authentication, please sign in:" in captured.err
    assert '"total_count": 0' in captured.out
