"""`conda-repo upload`: send package files to channels, streaming them with a progress bar."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from taipan.cli.condarc import condarc_default_channels, site_channel_name
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode
from taipan.client import UPLOAD_FILETYPES
from taipan.domain.names import split_channel_path
from taipan.errors import InvalidInput, TaipanError

PROGRESS_THRESHOLD = 1024 * 1024  # below 1 MiB a bar only flickers
TYPE_HINT = f"Pass -t/--package-type ({', '.join(sorted(UPLOAD_FILETYPES))})"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("upload", help="upload packages to channels",
                              description="Upload files. Without -c the first default_channels entry of "
                                          ".condarc is used, else your account's default channel.")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to upload")
    p.add_argument("-c", "--channel", action="append", default=[], metavar="CHANNEL",
                   help="target CHANNEL or CHANNEL/SUBCHANNEL (repeatable)")
    p.add_argument("-t", "--package-type", choices=sorted(UPLOAD_FILETYPES),
                   help="the kind of file (default: detected from the file's content)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.add_argument("-i", "--interactive", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print the server's answers as JSON")
    p.set_defaults(func=run)


def detect_type(path: Path) -> str:
    """Decide by content, not only by name: .conda is a zip, .tar.bz2 a bzip2 stream."""
    with path.open("rb") as fh:
        magic = fh.read(4)
    name = path.name.lower()
    if magic == b"PK\x03\x04":
        with zipfile.ZipFile(path) as zf:
            members = zf.namelist()
        if "metadata.json" in members and any(m.startswith("info-") for m in members):
            return "conda"
        if name.endswith(".whl") or any(m.endswith(".dist-info/WHEEL") for m in members):
            return "pypi"
    elif magic[:3] == b"BZh" and name.endswith(".tar.bz2"):
        return "conda"
    elif magic[:2] == b"\x1f\x8b" and name.endswith((".tar.gz", ".tgz", ".zip")):
        return "pypi"
    elif name.endswith(".ipynb"):
        return "ipynb"
    elif name.endswith((".yml", ".yaml")):
        return "env"
    raise InvalidInput(f"Cannot tell what kind of package {path.name} is", TYPE_HINT, code="unknown_type")


def default_channel(ctx: Context) -> str:
    """The first default_channels entry that is a channel of this site, else the account's channel."""
    for entry in condarc_default_channels():
        name = site_channel_name(entry, ctx.url)
        if name:
            return name
        ctx.out.debug(f"default_channels entry {entry} is not on {ctx.url}; skipped")
    name = ctx.client.account().get("default_channel_name")
    if not name:
        raise TaipanError("No channel to upload to", "Pass -c CHANNEL, or set default_channels in .condarc "
                          "(`conda-repo wizard`)", code="no_default_channel")
    return str(name)


def _check_files(paths: list[str]) -> list[Path]:
    files = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_file():
            raise InvalidInput(f"No such file: {raw}", "Check the path", code="no_such_file")
        files.append(path)
    return files


def _upload_one(ctx: Context, channel: str, path: Path, filetype: str, progress: Progress | None) -> Any:
    if progress is None:
        return ctx.client.upload(channel, path, filetype)
    task = progress.add_task(f"{path.name} -> {channel}", total=path.stat().st_size)
    try:
        return ctx.client.upload(channel, path, filetype, on_progress=lambda n: progress.advance(task, n))
    finally:
        progress.remove_task(task)


def run(ctx: Context, args: argparse.Namespace) -> int:
    files = _check_files(args.files)
    kinds = {path: args.package_type or detect_type(path) for path in files}
    channels = args.channel or [default_channel(ctx)]
    for channel in channels:
        split_channel_path(channel)  # reject a bad name before sending anything
    big = any(p.stat().st_size >= PROGRESS_THRESHOLD for p in files)
    big = big and not args.no_progress and not args.quiet
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=ctx.out.err, transient=True) if big else None
    answers = []
    if progress is not None:
        progress.start()
    try:
        for channel in channels:
            for path in files:
                answer = _upload_one(ctx, channel, path, UPLOAD_FILETYPES[kinds[path]], progress)
                answers.append({"channel": channel, "file": str(path), "result": answer})
                ctx.out.success(f"Uploaded {path.name} to {channel}")
    finally:
        if progress is not None:
            progress.stop()
    if args.json:
        ctx.out.json(answers)
    return ExitCode.OK
