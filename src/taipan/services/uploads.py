"""Uploading conda packages: spool, hash, validate against the file name, store, index."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from taipan.db.models import Channel, File
from taipan.domain.conda import (
    check_index_matches,
    make_record,
    parse_conda_filename,
    sniff_conda_format,
)
from taipan.domain.conda_archive import read_package_info
from taipan.domain.permissions import Principal
from taipan.domain.repodata import record_bytes
from taipan.errors import Conflict, InvalidInput, TooLarge
from taipan.services.channels import add_event, require_write
from taipan.services.indexing import lock_channel, log_changes
from taipan.storage.base import BlobStore

CONDA_FILETYPES = {"", "conda1", "conda", "conda_package", "conda_package_1", "conda_package_2"}
CHUNK = 1024 * 1024


@dataclass
class Spooled:
    """An uploaded file copied into the blob store's scratch space, with its digests."""

    path: Path
    size: int
    sha256: str
    md5: str
    head: bytes

    def discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def spool(src: BinaryIO, tmpdir: Path, max_size: int) -> Spooled:
    """Copy ``src`` to a temp file next to the blobs, hashing as it goes; enforce the size limit."""
    sha, md5, size, head = hashlib.sha256(), hashlib.md5(), 0, b""
    fd, name = tempfile.mkstemp(dir=tmpdir, prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(CHUNK):
                size += len(chunk)
                if size > max_size:
                    raise TooLarge(f"The upload is larger than the limit of {max_size} bytes",
                                   "Ask an admin to raise TAIPAN_SERVER__MAX_UPLOAD_SIZE",
                                   code="upload_too_large")
                if len(head) < 8:
                    head += chunk[:8]
                sha.update(chunk)
                md5.update(chunk)
                out.write(chunk)
    except BaseException:
        os.unlink(name)
        raise
    return Spooled(Path(name), size, sha.hexdigest(), md5.hexdigest(), head)


def check_filetype(filetype: str | None) -> None:
    if (filetype or "") not in CONDA_FILETYPES:
        raise InvalidInput(f"Uploads of type {filetype!r} are not supported yet",
                           "Upload conda packages (.conda or .tar.bz2) with filetype conda1",
                           code="unsupported_filetype")


def upload_conda(db: Session, blobs: BlobStore, p: Principal, channel: Channel, spooled: Spooled,
                 filename: str, *, declared_size: int | None = None) -> File:
    """Validate and store one conda package; the caller commits and then notifies the indexer."""
    require_write(p, channel, "artifact:create")
    if declared_size is not None and declared_size != spooled.size:
        raise InvalidInput(f"The upload has {spooled.size} bytes but {declared_size} were declared",
                           "The transfer was cut short; upload the file again", code="size_mismatch")
    fn = parse_conda_filename(filename)
    fmt = sniff_conda_format(spooled.head)
    if fmt is None:
        raise InvalidInput(f"{filename} is not a conda package archive",
                           "Conda packages are .conda (zip) or .tar.bz2 archives; the file may be corrupt",
                           code="invalid_package")
    if fmt != fn.ext:
        raise InvalidInput(f"{filename} holds a {fmt} archive but its name ends in {fn.ext}",
                           f"Rename it to {fn.name}-{fn.version}-{fn.build}{fmt}",
                           code="filename_mismatch")
    with open(spooled.path, "rb") as fh:
        index, about = read_package_info(fh, filename)
    subdir = check_index_matches(index, fn)
    ckey = f"{subdir}/{filename}"
    # Everything that can refuse the file is checked before anything is stored.
    record = record_bytes(make_record(index, sha256=spooled.sha256, md5=spooled.md5, size=spooled.size,
                                      subdir=subdir)).decode()
    meta = {"index.json": index, "about.json": about}
    lock_channel(db, channel.id)  # makes the duplicate check and the insert one step (PostgreSQL)
    if db.scalar(select(File.id).where(File.channel_id == channel.id, File.ckey == ckey)):
        raise _exists(ckey, channel)
    row = File(channel_id=channel.id, family="conda", name=fn.name, version=fn.version, subdir=subdir,
               filename=filename, ckey=ckey, sha256=spooled.sha256, md5=spooled.md5, size=spooled.size,
               record=record, meta=meta)
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        # A concurrent upload of the same file won between our check and our insert (SQLite has
        # no row lock to serialize them): the same answer as when the check itself finds it.
        db.rollback()
        raise _exists(ckey, channel) from exc
    # The blob goes in only once the row is certain; a crash before the commit leaves an orphan
    # blob that the blob cleanup reclaims, never a row without its blob.
    blobs.put_file(spooled.sha256, spooled.path, move=True)
    log_changes(db, channel.id, [(subdir, filename)])
    add_event(db, channel, "artifact_uploaded", p, ckey=ckey, name=fn.name, version=fn.version,
              family="conda", sha256=spooled.sha256)
    return row


def _exists(ckey: str, channel: Channel) -> Conflict:
    return Conflict(f"{ckey} already exists in channel {channel.path!r}",
                    "Remove the existing file first, or bump the build number", code="file_exists")
