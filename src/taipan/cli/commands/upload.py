"""`conda-repo upload`: send files to channels, streaming them with a progress bar.

Every file is tried in every channel and gets its own line: uploaded, skipped (the same file is already
there) or failed (and why); the exit status is not 0 when any failed. What a file is comes from its
content (taipan.domain.detect), so a notebook is called a notebook, not "not a conda package".
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from taipan.cli.condarc import condarc_default_channels, site_channel_name
from taipan.cli.context import Context
from taipan.cli.exitcodes import ExitCode, exit_code_for
from taipan.cli.paging import all_items
from taipan.client import UPLOAD_FILETYPES
from taipan.domain.detect import PROJECT_FILES, TYPE_EXPECTS, Detected, detect, from_members
from taipan.domain.names import split_channel_path
from taipan.errors import Conflict, InvalidInput, TaipanError, Unauthenticated

PROGRESS_THRESHOLD = 1024 * 1024  # below 1 MiB a bar only flickers
TYPE_HINT = f"Pass -t/--package-type ({', '.join(sorted(UPLOAD_FILETYPES))})"
KNOWN_KINDS = ("a conda package, wheel, sdist, R source package, Jupyter notebook, environment file, "
               "anaconda-project or SBOM")
# Errors after which trying the next file cannot go better: signing in again, or an unreachable server.
FATAL_CODES = frozenset({"connection_error", "timeout"})


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "upload", help="upload packages to channels",
        description="Upload files. Without -c the first default_channels entry of .condarc is used, else "
                    "your account's default channel. Every file is tried; each gets a line saying whether "
                    "it was uploaded, skipped (the same file is already there) or failed, and the exit "
                    "status is not 0 when any failed.")
    p.add_argument("files", nargs="+", metavar="FILE", help="files to upload")
    p.add_argument("-c", "--channel", action="append", default=[], metavar="CHANNEL",
                   help="target CHANNEL or CHANNEL/SUBCHANNEL (repeatable)")
    p.add_argument("-t", "--package-type", choices=sorted(UPLOAD_FILETYPES),
                   help="the kind of file (default: detected from the file's content)")
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.add_argument("-i", "--interactive", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json", action="store_true", help="print each file's result as JSON")
    p.set_defaults(func=run)


def detect_type(path: Path) -> Detected:
    """What ``path`` is, from its content; raises when it is none of the kinds the CLI knows."""
    if path.is_dir():
        found = from_members((str(p.relative_to(path)) for p in path.rglob("*")), zip_archive=False)
        if found is not None and found.kind == "project":
            raise InvalidInput(f"{path.name} is a directory holding an anaconda-project",
                               "Upload an archive of it (`anaconda-project archive NAME.zip`)", code="is_directory")
        raise InvalidInput(f"{path.name} is a directory", "Give the files in it", code="is_directory")
    if not path.is_file():
        raise InvalidInput(f"No such file: {path}", "Check the path", code="no_such_file")
    with path.open("rb") as fh:
        found = detect(fh, path.name)
    if found is None:
        raise InvalidInput(f"Cannot tell what kind of file {path.name} is: it is not {KNOWN_KINDS}", TYPE_HINT,
                           code="unknown_type")
    return found


def resolve_type(path: Path, requested: str | None) -> str:
    """The --package-type to send: the detected one, or ``requested`` when the content allows it."""
    try:
        found = detect_type(path)
    except InvalidInput as err:
        if requested and err.code == "unknown_type":
            return requested  # nothing we can read contradicts it: trust the user
        raise
    if requested and requested != found.kind:
        raise InvalidInput(f"{path.name} is not {TYPE_EXPECTS[requested]} (-t {requested}): it is {found.what}",
                           f"Leave out -t (the type is detected from the content), or pass -t {found.kind}",
                           code="wrong_package_type")
    return found.kind


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


@dataclass
class Result:
    file: Path
    channel: str | None
    status: str  # uploaded | skipped | failed
    answer: Any = None
    error: TaipanError | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"file": str(self.file), "channel": self.channel, "status": self.status}
        if self.answer is not None:
            out["result"] = self.answer
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _same_file_there(ctx: Context, channel: str, path: Path) -> bool:
    """After a conflict: is the file already in the channel byte for byte the one we have?"""
    name = path.name
    for ext in (".conda", ".tar.bz2"):
        if name.endswith(ext):
            package = name[: -len(ext)].rsplit("-", 2)[0]
            break
    else:
        return False
    try:
        there = [f for f in all_items(lambda o, n: ctx.client.files(channel, "conda", package, o, n))
                 if f.get("name") == name or str(f.get("ckey", "")).endswith("/" + name)]
    except TaipanError:
        return False
    local = _sha256(path)
    return any(f.get("sha256") == local for f in there)


def _upload_one(ctx: Context, channel: str, path: Path, filetype: str, progress: Progress | None) -> Any:
    if progress is None:
        return ctx.client.upload(channel, path, filetype)
    task = progress.add_task(f"{path.name} -> {channel}", total=path.stat().st_size)
    try:
        return ctx.client.upload(channel, path, filetype, on_progress=lambda n: progress.advance(task, n))
    finally:
        progress.remove_task(task)


def _try(ctx: Context, channel: str, path: Path, kind: str, progress: Progress | None) -> Result:
    try:
        answer = _upload_one(ctx, channel, path, UPLOAD_FILETYPES[kind], progress)
    except Unauthenticated:
        raise  # main signs in again and runs the command once more
    except TaipanError as err:
        if err.code in FATAL_CODES:
            raise
        if isinstance(err, Conflict) and err.code == "file_exists":
            if _same_file_there(ctx, channel, path):
                return Result(path, channel, "skipped")
            err = Conflict(f"A different file named {path.name} is already in {channel}",
                           "Remove it first (`conda-repo remove`), or bump the build number", code="file_exists")
        return Result(path, channel, "failed", error=err)
    return Result(path, channel, "uploaded", answer=answer)


def _say(ctx: Context, r: Result) -> None:
    target = f" to {r.channel}" if r.channel else ""
    if r.status == "uploaded":
        ctx.out.success(f"Uploaded {r.file.name}{target}")
    elif r.status == "skipped":
        ctx.out.info(f"Skipped {r.file.name}{target}: the same file is already there")
    else:
        assert r.error is not None
        ctx.out.error(f"Failed to upload {r.file.name}{target}: {r.error.message}", r.error.hint)


def _summary(ctx: Context, results: list[Result]) -> int:
    counts = {s: sum(1 for r in results if r.status == s) for s in ("uploaded", "skipped", "failed")}
    if len(results) > 1:
        ctx.out.info(f"{counts['uploaded']} uploaded, {counts['skipped']} skipped (already there), "
                     f"{counts['failed']} failed")
    codes = {exit_code_for(r.error) for r in results if r.error is not None}
    if not codes:
        return ExitCode.OK
    return codes.pop() if len(codes) == 1 else ExitCode.ERROR


# What `anaconda-project archive` leaves out of a project directory, and what no archive needs.
SKIP_DIRS = frozenset({"envs", "services", ".git", ".hg", ".svn", "__pycache__", ".ipynb_checkpoints"})


def archive_project(path: Path, tmpdir: Path) -> Path:
    """A zip of a project directory (as `anaconda-project archive` makes: every file below one top
    directory named after the project directory, without envs/ and version-control folders)."""
    target = tmpdir / f"{path.resolve().name}.zip"
    top = path.resolve().name
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for item in sorted(path.rglob("*")):
            rel = item.relative_to(path)
            if any(part in SKIP_DIRS for part in rel.parts) or item.suffix == ".pyc" or not item.is_file():
                continue
            zf.write(item, f"{top}/{rel.as_posix()}")
    return target


def is_project_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in PROJECT_FILES)


def run(ctx: Context, args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="conda-repo-upload-") as tmp:
        return _run(ctx, args, Path(tmp))


def _run(ctx: Context, args: argparse.Namespace, tmpdir: Path) -> int:
    for channel in args.channel:
        split_channel_path(channel)  # reject a bad name before sending anything
    results: list[Result] = []
    ready: list[tuple[Path, str]] = []
    for raw in args.files:
        path = Path(raw).expanduser()
        try:
            if is_project_dir(path):  # a project directory goes up as the archive of it
                path = archive_project(path, tmpdir)
            ready.append((path, resolve_type(path, args.package_type)))
        except InvalidInput as err:
            results.append(Result(path, None, "failed", error=err))
            _say(ctx, results[-1])
    channels = (args.channel or [default_channel(ctx)]) if ready else []
    big = any(p.stat().st_size >= PROGRESS_THRESHOLD for p, _ in ready)
    big = big and not args.no_progress and not args.quiet
    progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        TransferSpeedColumn(), console=ctx.out.err, transient=True) if big else None
    if progress is not None:
        progress.start()
    try:
        for channel in channels:
            for path, kind in ready:
                results.append(_try(ctx, channel, path, kind, progress))
                _say(ctx, results[-1])
    finally:
        if progress is not None:
            progress.stop()
    if args.json:
        ctx.out.json([r.to_json() for r in results])
    return _summary(ctx, results)
