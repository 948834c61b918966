"""Channels and subchannels: create, show, update, delete, list, history, and access checks."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from taipan.db.mirrors import Mirror
from taipan.db.models import (
    Channel,
    ChannelEvent,
    ChannelOwner,
    File,
    HeldChange,
    IndexChange,
    IndexPublication,
    User,
    utcnow,
)
from taipan.domain.filters import normalize_channel_filters
from taipan.domain.names import split_channel_path, validate_channel_name
from taipan.domain.permissions import PRIVACY_LEVELS, Principal, can_read_channel, can_write_channel
from taipan.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from taipan.services import cve_matching
from taipan.services.indexing import release_held, ring_after_commit, ring_path_after_commit

EDITABLE_FIELDS = ("privacy", "description", "name", "frozen", "filters")
MAX_DESCRIPTION = 10_000
MAX_FILTERS_JSON = 64 * 1024


def owner_ids(channel: Channel) -> set[str]:
    """Owners of a channel; a subchannel is owned by its own owners and its parent's."""
    ids = {u.id for u in channel.owners}
    if channel.parent is not None:
        ids |= {u.id for u in channel.parent.owners}
    return ids


def kind_of(channel: Channel) -> str:
    return "subchannel" if channel.parent_id else "channel"


def find_channel(db: Session, path: str) -> Channel | None:
    return db.scalar(select(Channel).where(Channel.path == path))


def find_channels(db: Session, paths: list[str]) -> list[Channel]:
    """The channels of these paths that exist (with their parents and owners), in a few queries
    whatever their number."""
    found: list[Channel] = []
    for i in range(0, len(paths), 500):
        found += db.scalars(select(Channel).where(Channel.path.in_(paths[i:i + 500])))
    return found


def channel_not_found(path: str) -> NotFound:
    """The one answer for a channel that does not exist and for one the caller may not see, so that
    no answer reveals whether a channel the caller cannot read exists."""
    return NotFound(f"Channel {path!r} does not exist",
                    "List the channels you can see with `conda repo channel --list` (log in to see more)",
                    code="channel_not_found")


def get_channel(db: Session, path: str) -> Channel:
    split_channel_path(path)
    channel = find_channel(db, path)
    if channel is None:
        raise channel_not_found(path)
    return channel


def effective_privacy(channel: Channel) -> str:
    """A subchannel is never more visible than its parent: the stricter of the two privacies."""
    if channel.parent is None:
        return channel.privacy
    return max(channel.privacy, channel.parent.privacy, key=PRIVACY_LEVELS.index)


def can_read(p: Principal, channel: Channel) -> bool:
    return can_read_channel(p, effective_privacy(channel), owner_ids(channel))


def require_read(p: Principal, channel: Channel, scope: str | None = None) -> None:
    """Raise unless ``p`` may read ``channel`` with a credential carrying ``scope``. A channel the
    caller may not see is answered exactly like a missing one (404); a visible channel with a
    credential lacking the scope is a 403."""
    if not can_read(p, channel):
        raise channel_not_found(channel.path)
    if scope and p.authenticated:
        require_scope(p, scope)


def require_write(p: Principal, channel: Channel, scope: str) -> None:
    if not p.authenticated:
        raise Unauthenticated("This action requires authentication", "Log in or pass a token",
                              code="authentication_required")
    require_read(p, channel)
    require_scope(p, scope)
    if not can_write_channel(p, owner_ids(channel)):
        raise Forbidden(f"You are not an owner of channel {channel.path!r}",
                        "Only owners and admins can change a channel", code="channel_forbidden")


def require_scope(p: Principal, scope: str) -> None:
    if not p.authenticated:
        raise Unauthenticated("This action requires authentication", "Log in or pass a token",
                              code="authentication_required")
    if not p.has_scope(scope):
        raise Forbidden(f"Your token does not have the {scope!r} scope",
                        "Create a token with that scope (conda repo auth --create -s SCOPE)",
                        code="insufficient_scope")


def add_event(db: Session, channel: Channel, event_type: str, p: Principal | None = None,
              **data: Any) -> None:
    meta = {"username": p.username} if p and p.username else {}
    db.add(ChannelEvent(channel_id=channel.id, event_type=event_type, data=data, meta=meta))


def _check_privacy(privacy: Any) -> str:
    if privacy not in PRIVACY_LEVELS:
        raise InvalidInput(f"Invalid privacy {privacy!r}", f"Use one of: {', '.join(PRIVACY_LEVELS)}",
                           code="invalid_privacy")
    return str(privacy)


def _check_description(description: Any) -> str:
    """Descriptions are stored and served on every listing: bounded, and refused (not cut) beyond."""
    if description is None:
        return ""
    if not isinstance(description, str):
        raise InvalidInput("description must be text", "Send a JSON string", code="invalid_field")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"The description has {len(description)} characters; at most {MAX_DESCRIPTION} "
                           "are allowed", "Shorten the description", code="description_too_long")
    return description


def create_channel(db: Session, p: Principal, name: str, *, parent_path: str | None = None,
                   privacy: str | None = None, description: str = "") -> Channel:
    parent = None
    if parent_path is None:
        require_scope(p, "channel:create")
        validate_channel_name(name)
        path = name
    else:
        parent = get_channel(db, parent_path)
        require_write(p, parent, "subchannel:create")
        if parent.parent_id:
            raise InvalidInput("Subchannels cannot have subchannels", "Use CHANNEL/SUBCHANNEL",
                               code="invalid_channel_name")
        validate_channel_name(name, sub=True)
        path = f"{parent.path}/{name}"
    if find_channel(db, path):
        raise Conflict(f"Channel {path!r} already exists", "Choose another name",
                       code="channel_exists")
    privacy = _check_privacy(privacy or (parent.privacy if parent else "public"))
    channel = Channel(name=name, path=path, parent_id=parent.id if parent else None, privacy=privacy,
                      description=_check_description(description))
    db.add(channel)
    db.flush()
    if parent is None:
        db.add(ChannelOwner(channel_id=channel.id, user_id=p.user_id))
    db.flush()
    db.refresh(channel)
    ring_path_after_commit(db, path)  # processes that looked it up in vain find it at once
    add_event(db, channel, f"{kind_of(channel)}_created", p, name=path, privacy=privacy)
    return channel


def _ring(db: Session, channel: Channel) -> None:
    """Other processes of this machine look the channel and its subchannels up again at once after
    the commit (privacy, freezing, name and owners are served from their caches)."""
    for cid in [channel.id, *db.scalars(select(Channel.id).where(Channel.parent_id == channel.id))]:
        ring_after_commit(db, cid)


def update_channel(db: Session, p: Principal, channel: Channel, changes: dict[str, Any]) -> Channel:
    require_write(p, channel, f"{kind_of(channel)}:edit")
    _ring(db, channel)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS) - {"id", "owners", "parent"})
    if unknown:
        raise InvalidInput(f"Unknown channel field(s): {', '.join(unknown)}",
                           f"Editable fields: {', '.join(EDITABLE_FIELDS)}", code="invalid_field")
    applied: dict[str, Any] = {}
    if "privacy" in changes:
        channel.privacy = applied["privacy"] = _check_privacy(changes["privacy"])
    if "description" in changes:
        channel.description = applied["description"] = _check_description(changes["description"])
    if "frozen" in changes:
        if not isinstance(changes["frozen"], bool):
            raise InvalidInput("frozen must be true or false", "Send a JSON boolean", code="invalid_field")
        if channel.frozen and not changes["frozen"]:
            channel.frozen = False
            db.flush()
            # What was written meanwhile is published now; replaced files are matched against the
            # CVE data first (their scores were of the values they replace), so that the channel's
            # CVE filters withhold them as they would any other file.
            cve_matching.match_ids(db, release_held(db, channel.id))
        channel.frozen = applied["frozen"] = changes["frozen"]
    if "filters" in changes:
        if not isinstance(changes["filters"], dict):
            raise InvalidInput("filters must be an object", "Send a JSON object", code="invalid_field")
        # Checked now, not when a mirror of the channel next runs.
        normalize_channel_filters(changes["filters"])
        if len(json.dumps(changes["filters"])) > MAX_FILTERS_JSON:
            raise InvalidInput("The channel filters are too large", f"Keep them under {MAX_FILTERS_JSON} bytes",
                               code="invalid_field")
        channel.filters = applied["filters"] = changes["filters"]
    if "name" in changes and changes["name"] != channel.name:
        _rename(db, channel, str(changes["name"]))
        applied["name"] = channel.path
    channel.updated = utcnow()
    if applied:
        add_event(db, channel, f"{kind_of(channel)}_updated", p, **applied)
    if "filters" in applied:
        from taipan.services import cve_enforcement  # it records events through this module

        db.flush()
        cve_enforcement.enforce(db, [channel.id])
    return channel


def _rename(db: Session, channel: Channel, new_name: str) -> None:
    validate_channel_name(new_name, sub=bool(channel.parent_id))
    new_path = f"{channel.parent.path}/{new_name}" if channel.parent else new_name
    if find_channel(db, new_path):
        raise Conflict(f"Channel {new_path!r} already exists", "Choose another name", code="channel_exists")
    channel.name, channel.path = new_name, new_path
    ring_path_after_commit(db, new_path)  # the old paths' views are rung by id (``_ring``)
    for sub in db.scalars(select(Channel).where(Channel.parent_id == channel.id)):
        sub.path = f"{new_path}/{sub.name}"
        ring_path_after_commit(db, sub.path)


def delete_channel(db: Session, p: Principal, channel: Channel) -> list[str]:
    """Delete a channel (and its subchannels); return the ids removed, for cache invalidation."""
    require_write(p, channel, f"{kind_of(channel)}:delete")
    ids = [channel.id, *db.scalars(select(Channel.id).where(Channel.parent_id == channel.id))]
    for sub in db.scalars(select(Channel).where(Channel.parent_id == channel.id)):
        db.delete(sub)
    db.delete(channel)
    # The index log has no foreign key (it is append-only and hot); drop the channels' entries too.
    db.execute(delete(IndexChange).where(IndexChange.channel_id.in_(ids)))
    db.execute(delete(HeldChange).where(HeldChange.channel_id.in_(ids)))
    db.execute(delete(IndexPublication).where(IndexPublication.channel_id.in_(ids)))
    for cid in ids:
        ring_after_commit(db, cid)
    return ids


def visible_channels(db: Session, p: Principal, *, owned_only: bool = False,
                     parent: Channel | None = None) -> list[Channel]:
    q = select(Channel).order_by(Channel.path)
    q = q.where(Channel.parent_id == parent.id) if parent else q.where(Channel.parent_id.is_(None))
    channels = list(db.scalars(q))
    if owned_only:
        return [c for c in channels if p.user_id in owner_ids(c)]
    return [c for c in channels if can_read(p, c)]


def visible_channels_page(db: Session, p: Principal, offset: int = 0,
                          limit: int | None = None) -> tuple[int, list[Channel]]:
    """One page of the top-level channels ``p`` can reach, and how many there are in all."""
    channels = visible_channels(db, p)
    end = None if limit is None else offset + limit
    return len(channels), channels[offset:end]


def channel_json(db: Session, channel: Channel) -> dict[str, Any]:
    artifacts = db.scalar(select(func.count(func.distinct(File.name))).where(File.channel_id == channel.id))
    subs = db.scalar(select(func.count()).select_from(Channel).where(Channel.parent_id == channel.id))
    mirror_count = _mirror_count(db, channel)
    owners = sorted(u.username for u in (channel.parent.owners if channel.parent else channel.owners))
    out: dict[str, Any] = {
        "id": channel.id, "name": channel.name, "path": channel.path,
        "description": channel.description, "privacy": channel.privacy,
        "effective_privacy": effective_privacy(channel), "frozen": channel.frozen,
        "artifact_count": artifacts or 0, "download_count": channel.download_count,
        "subchannel_count": subs or 0, "group_count": 0, "mirror_count": mirror_count,
        "filters": channel.filters or {}, "owners": owners,
        "created": channel.created.isoformat(), "updated": channel.updated.isoformat(),
    }
    if channel.parent is not None:
        out["parent"] = channel.parent.name
    return out


def _mirror_count(db: Session, channel: Channel) -> int:
    return db.scalar(select(func.count()).select_from(Mirror).where(Mirror.channel_id == channel.id)) or 0


def history(db: Session, channel: Channel, offset: int, limit: int) -> tuple[int, list[ChannelEvent]]:
    total = db.scalar(select(func.count()).select_from(ChannelEvent)
                      .where(ChannelEvent.channel_id == channel.id)) or 0
    events = db.scalars(select(ChannelEvent).where(ChannelEvent.channel_id == channel.id)
                        .order_by(ChannelEvent.id.desc()).offset(offset).limit(limit))
    return total, list(events)


def add_owner(db: Session, p: Principal, channel: Channel, username: str) -> None:
    require_write(p, channel, f"{kind_of(channel)}:edit")
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user named {username!r}", "Check the user name", code="user_not_found")
    if user.id not in {u.id for u in channel.owners}:
        db.add(ChannelOwner(channel_id=channel.id, user_id=user.id))
        _ring(db, channel)
