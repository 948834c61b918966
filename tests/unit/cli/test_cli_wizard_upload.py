"""The wizard with piped answers, and upload's type detection and default channel, against a mock API."""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml

from taipan.cli.commands.upload import detect_type
from taipan.cli.main import main
from taipan.domain.detect import Detected
from taipan.errors import InvalidInput

CHANNELS = {"total_count": 2, "items": [
    {"name": "snakes", "mirror_count": 1, "privacy": "public", "owners": ["admin"]},
    {"name": "web", "mirror_count": 0, "privacy": "private", "owners": ["bob"]}]}


def pipe(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))


def test_wizard_with_piped_answers(write_site, mock_server, isolated: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                   capsys: pytest.CaptureFixture[str]) -> None:
    write_site(isolated, "https://server.example.com/api")
    mock_server(lambda r: httpx.Response(200, json=CHANNELS))
    rc = isolated / ".condarc"
    rc.write_bytes(b"channels: [conda-forge]\nalways_yes: true\n")
    pipe(monkeypatch, "nosuch\nsnakes nosuch\nweb\ny\n")
    assert main(["wizard"]) == 0
    err = capsys.readouterr().err
    assert "The CondaRC path is" in err and "'nosuch' does not exist" in err and "snakes" in err
    assert yaml.safe_load(rc.read_text()) == {
        "channels": ["defaults", "web"], "always_yes": True,
        "channel_alias": "https://server.example.com/api/repo", "default_channels": ["snakes"]}
    assert main(["wizard", "--restore"]) == 0
    assert rc.read_bytes() == b"channels: [conda-forge]\nalways_yes: true\n"


def test_wizard_declined_changes_nothing(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                         monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    write_site(isolated)
    mock_server(lambda r: httpx.Response(200, json=CHANNELS))
    target = tmp_path / "custom.condarc"
    pipe(monkeypatch, "snakes\n\nn\n")
    assert main(["wizard", "--file", str(target)]) == 0
    assert not target.exists()


def tiny_tar_bz2(path: Path) -> Path:
    """A .tar.bz2 with info/index.json: what upload's content detection calls a conda package."""
    with tarfile.open(path, "w:bz2") as tar:
        data = b'{"name": "a", "version": "1", "build": "0", "subdir": "noarch"}'
        info = tarfile.TarInfo("info/index.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def test_detect_type(tmp_path: Path) -> None:
    conda = tmp_path / "x-1-0.conda"
    with zipfile.ZipFile(conda, "w") as zf:
        zf.writestr("metadata.json", "{}")
        zf.writestr("info-x-1-0.tar.zst", b"")
        zf.writestr("pkg-x-1-0.tar.zst", b"")
    assert detect_type(conda).kind == "conda"
    renamed = tmp_path / "x-1-0.pkg"  # by content, even without the extension
    renamed.write_bytes(conda.read_bytes())
    assert detect_type(renamed).kind == "conda"
    assert detect_type(tiny_tar_bz2(tmp_path / "x-1-0.tar.bz2")).kind == "conda"
    fake = tmp_path / "y-1-0.tar.bz2"  # the name and the magic bytes are not enough
    fake.write_bytes(b"BZh91AY&SY")
    with pytest.raises(InvalidInput, match="Cannot tell"):
        detect_type(fake)
    wheel = tmp_path / "x-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("x-1.0.dist-info/METADATA", "Name: x\n")
        zf.writestr("x-1.0.dist-info/WHEEL", "")
    assert detect_type(wheel) == Detected("pypi", "a Python wheel")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01")
    with pytest.raises(InvalidInput, match="package-type"):
        detect_type(junk)


def test_upload_default_channel_comes_from_condarc(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                                   tmp_path: Path) -> None:
    write_site(isolated)
    (isolated / ".condarc").write_text("default_channels:\n  - fromrc\n")
    seen = mock_server(lambda r: httpx.Response(201, json={}))
    f = tiny_tar_bz2(tmp_path / "a-1-0.tar.bz2")
    assert main(["upload", str(f)]) == 0
    assert seen[-1].url.path == "/api/channels/fromrc/artifacts"


def test_upload_falls_back_to_account_channel(write_site, mock_server, isolated: Path,  # type: ignore[no-untyped-def]
                                              tmp_path: Path) -> None:
    write_site(isolated)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/account":
            return httpx.Response(200, json={"default_channel_name": "mine"})
        return httpx.Response(201, json={})

    seen = mock_server(handler)
    f = tiny_tar_bz2(tmp_path / "a-1-0.tar.bz2")
    assert main(["upload", str(f), str(f)]) == 0
    assert [r.url.path for r in seen] == ["/api/account", "/api/channels/mine/artifacts",
                                          "/api/channels/mine/artifacts"]


def test_upload_missing_file(write_site, isolated: Path) -> None:
    write_site(isolated)
    assert main(["upload", "nope.conda", "-c", "x"]) == 2
