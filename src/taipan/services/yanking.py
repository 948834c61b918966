"""PEP 592 yanking: mark files of a yankable family (Python) as yanked, with a reason, or unyank them.

A yanked file stays downloadable by its exact pin but installers skip it otherwise; the flag lives in
the file's record, so the simple index republishes the project page through the change log.
"""

from __future__ import annotations

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from taipan.db.models import Channel, File
from taipan.domain import families
from taipan.domain.permissions import Principal
from taipan.domain.repodata import record_bytes
from taipan.errors import ChannelFrozen, InvalidInput, NotFound
from taipan.services.channels import add_event, require_write
from taipan.services.indexing import log_changes

MAX_REASON = 500


def set_yanked(db: Session, p: Principal, channel: Channel, family: str, package: str, *, yanked: bool,
               reason: str = "", version: str | None = None, ckeys: list[str] | None = None) -> list[File]:
    """Yank (or unyank) the package's files, all of them or those of one version or of given ckeys;
    returns the files changed. The caller commits and notifies the indexer."""
    require_write(p, channel, "artifact:edit")
    fam = families.get(family)
    if not fam.yankable:
        raise InvalidInput(f"{fam.title} files cannot be yanked", "Remove them instead (conda repo remove)",
                           code="not_yankable")
    if channel.frozen:
        raise ChannelFrozen(f"Channel {channel.path!r} is frozen", "Unfreeze it first", code="channel_frozen")
    if len(reason) > MAX_REASON:
        raise InvalidInput("The yank reason is too long", f"Use at most {MAX_REASON} characters",
                           code="invalid_reason")
    name = fam.normalize_name(package)
    q = select(File).where(File.channel_id == channel.id, File.family == family, File.name == name)
    if ckeys:
        q = q.where(File.ckey.in_(ckeys[:1000]))
    files = [f for f in db.scalars(q)
             if version is None or fam.version_key(f.version) == fam.version_key(version)]
    if not files:
        what = f"{package} {version}" if version else package
        raise NotFound(f"No file of {what} in channel {channel.path!r}",
                       "`conda-repo channel --list-files` lists the files", code="package_not_found")
    changed = []
    for f in files:
        record = orjson.loads(f.record)
        before = record.get("yanked")
        if yanked:
            record["yanked"] = reason
        else:
            record.pop("yanked", None)
        if record.get("yanked") != before:
            f.record = record_bytes(record).decode()
            changed.append(f)
    if changed:
        log_changes(db, channel.id, [(f.subdir, f.filename) for f in changed])
        add_event(db, channel, "artifacts_yanked" if yanked else "artifacts_unyanked", p,
                  ckeys=[f.ckey for f in changed], **({"reason": reason} if yanked and reason else {}))
    return changed
