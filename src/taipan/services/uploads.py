"""Uploads of every family: spool and hash, ask the family to read and validate, store, log for indexing."""

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
from taipan.domain import families
from taipan.domain.families import Artifact, Family
from taipan.domain.names import validate_filename
from taipan.domain.permissions import Principal
from taipan.domain.repodata import record_bytes
from taipan.errors import Conflict, InvalidInput, TooLarge
from taipan.services import cve_enforcement, cve_matching
from taipan.services.channels import add_event, require_write
from taipan.services.indexing import lock_channel, log_changes
from taipan.storage.base import BlobStore

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


@dataclass(frozen=True)
class UploadChecks:
    """What the uploading client says about the file (twine sends these), checked against it."""

    sha256: str = ""
    md5: str = ""
    name: str = ""
    version: str = ""

    def verify(self, spooled: Spooled, art: Artifact, family: Family) -> None:
        for label, given, actual in (("sha256", self.sha256, spooled.sha256), ("md5", self.md5, spooled.md5)):
            if given and given.strip().lower() != actual:
                raise InvalidInput(f"The {label} digest sent with {art.filename} does not match its bytes",
                                   "The transfer was damaged; upload the file again", code="digest_mismatch")
        if self.name and family.normalize_name(self.name) != art.name:
            raise InvalidInput(f"The name {self.name!r} sent with {art.filename} does not match the "
                               f"package ({art.name!r})", "Upload the file with its own metadata",
                               code="filename_mismatch")
        if self.version and self.version.strip() != art.version and family.version_key(
                self.version.strip()) != family.version_key(art.version):
            raise InvalidInput(f"The version {self.version!r} sent with {art.filename} does not match the "
                               f"package ({art.version!r})", "Upload the file with its own metadata",
                               code="filename_mismatch")


def check_filetype(filetype: str | None) -> None:
    """Refuse an unknown or not yet stored upload type before the body is read."""
    wanted = (filetype or "").strip()
    if wanted:
        name = families.UPLOAD_TYPES.get(wanted)
        if name is None:
            raise InvalidInput(f"Unknown upload type {wanted!r}",
                               "Known types: " + ", ".join(sorted(t for t in families.UPLOAD_TYPES if t)),
                               code="unsupported_filetype")
        if name not in {f.name for f in families.implemented()}:
            raise InvalidInput(f"This server does not accept {name} uploads yet ({wanted!r})",
                               "Upload conda packages, or ask the administrator which families are enabled",
                               code="unsupported_filetype")


def choose_family(filetype: str | None, filename: str, head: bytes, path: Path | None = None) -> Family:
    """The family an upload belongs to: named by its ``filetype`` form field (conda-repo-cli's
    values), else recognised from its name and first bytes. A file that is plainly of another family
    than the one named is refused with what it really is."""
    wanted = (filetype or "").strip()
    sniffed = next((f for f in families.implemented() if f.sniff(filename, head, path)), None)
    if not wanted:
        return sniffed or families.get("conda")
    check_filetype(wanted)
    family = families.get(families.UPLOAD_TYPES[wanted])
    if sniffed is not None and sniffed is not family and not family.sniff(filename, head, path):
        raise InvalidInput(f"{filename} is a {sniffed.title}, not a {family.title}",
                           f"Upload it as a {sniffed.title} (or leave the type out to detect it)",
                           code="wrong_filetype")
    return family


def upload(db: Session, blobs: BlobStore, p: Principal, channel: Channel, spooled: Spooled, filename: str,
           *, filetype: str | None = None, declared_size: int | None = None,
           checks: UploadChecks | None = None, subdir: str | None = None) -> File:
    """Validate and store one artifact of any family; the caller commits, then notifies the indexer."""
    require_write(p, channel, "artifact:create")
    if declared_size is not None and declared_size != spooled.size:
        raise InvalidInput(f"The upload has {spooled.size} bytes but {declared_size} were declared",
                           "The transfer was cut short; upload the file again", code="size_mismatch")
    validate_filename(filename)
    family = choose_family(filetype, filename, spooled.head, spooled.path)
    # Everything that can refuse the file is checked before anything is stored.
    art = family.read_upload(spooled.path, filename, sha256=spooled.sha256, md5=spooled.md5, size=spooled.size,
                             subdir=subdir or None)
    if checks is not None:
        checks.verify(spooled, art, family)
    cve_enforcement.check_channel_filters(db, channel, art.family, {**art.record, "name": art.name,
                                                                    "version": art.version}, art.subdir)
    record = record_bytes(art.record).decode()
    lock_channel(db, channel.id)  # makes the duplicate check and the insert one step (PostgreSQL)
    if db.scalar(select(File.id).where(File.channel_id == channel.id, File.ckey == art.ckey)):
        raise _exists(art.ckey, channel)
    row = File(channel_id=channel.id, family=art.family, name=art.name, version=art.version, subdir=art.subdir,
               filename=art.filename, ckey=art.ckey, sha256=spooled.sha256, md5=spooled.md5, size=spooled.size,
               record=record, meta=art.meta)
    db.add(row)
    try:
        db.flush()
    except IntegrityError as exc:
        # A concurrent upload of the same file won between our check and our insert (SQLite has
        # no row lock to serialize them): the same answer as when the check itself finds it.
        db.rollback()
        raise _exists(art.ckey, channel) from exc
    # The blob goes in only once the row is certain; a crash before the commit leaves an orphan
    # blob that the blob cleanup reclaims, never a row without its blob.
    blobs.put_file(spooled.sha256, spooled.path, move=True)
    cve_matching.match_files(db, File.id == row.id)
    log_changes(db, channel.id, [(art.subdir, art.filename)])
    add_event(db, channel, "artifact_uploaded", p, ckey=art.ckey, name=art.name, version=art.version,
              family=art.family, sha256=spooled.sha256)
    return row


def _exists(ckey: str, channel: Channel) -> Conflict:
    return Conflict(f"{ckey} already exists in channel {channel.path!r}",
                    "Remove the existing file first, or bump the build number", code="file_exists")
