"""Mirrors: create, update, delete, list, run, stop, schedule, and passive files on demand.

The run itself is in ``mirror_sync``. Callers commit, then call ``enqueue_runs`` with what
``request_run`` returned, so that a worker never looks for a mirror that is not committed yet.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from croniter import croniter
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File, utcnow
from taipan.domain import filters as flt
from taipan.domain.egress import EgressPolicy
from taipan.domain.names import KNOWN_SUBDIRS
from taipan.domain.permissions import Principal
from taipan.domain.urls import MASK, has_credentials, redact_url, scrub, secrets_of, unmask
from taipan.errors import Conflict, Forbidden, InvalidInput, NotFound, TaipanError, UpstreamError
from taipan.jobs import DueRun, JobRegistry
from taipan.services import channels as channel_service
from taipan.services.indexing import forget_held, log_changes
from taipan.services.mirror_runs import JOB_SYNC, MirrorEnv, error_category, initial_sync_state, is_stale
from taipan.services.mirror_sync import run_mirror
from taipan.storage.secrets import SecretBox
from taipan.upstreams.egress import check_url

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
SUPPORTED_TYPES = ("conda", "python_simple", "CRAN")


# --- validation ---------------------------------------------------------------------------------

def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise InvalidInput(f"Invalid mirror name {str(value)[:100]!r}",
                           "Use up to 100 letters, digits, '.', '_' and '-', starting with a letter or digit",
                           code="invalid_mirror_name")
    return value


def _url(value: Any, what: str = "source", *, allow_empty: bool = False) -> str | None:
    if allow_empty and value in (None, ""):
        return None
    parts = urlsplit(str(value or ""))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        hint = ("Give the channel's root URL, e.g. https://conda.anaconda.org/conda-forge"
                if what == "source" else "Give an http:// proxy URL, e.g. http://user:pass@proxy:3128")
        raise InvalidInput(f"Invalid {what} URL {redact_url(str(value or ''))[:200]!r}", hint,
                           code=f"invalid_{what}")
    if what != "source":
        return str(value)
    url = str(value).rstrip("/")
    _refuse_subdir_url(url)
    return url


_INDEX_FILES = ("repodata.json", "repodata.json.zst", "repodata.json.bz2", "current_repodata.json",
                "repodata_shards.msgpack.zst", "channeldata.json")


def _refuse_subdir_url(url: str) -> None:
    """A common mistake: the URL of a subdir or of an index file instead of the channel root."""
    parts = urlsplit(url)
    segments = parts.path.rstrip("/").split("/")
    root = segments[:]
    if root and root[-1] in _INDEX_FILES:
        root.pop()
    if root and root[-1] in KNOWN_SUBDIRS:
        root.pop()
    if len(root) == len(segments):
        return
    fixed = urlunsplit(parts._replace(path="/".join(root), query="", fragment=""))
    raise InvalidInput(f"The source URL {redact_url(url)!r} points into a channel, not at its root",
                       f"Give the channel root, e.g. {redact_url(fixed)!r}; use --subdirs to choose platforms",
                       code="invalid_source")


def _type(value: Any) -> str:
    value = value or "conda"
    if value not in flt.MIRROR_TYPES:
        raise InvalidInput(f"Unknown mirror type {value!r}", "Use one of: " + ", ".join(flt.MIRROR_TYPES),
                           code="invalid_mirror_type")
    if value not in SUPPORTED_TYPES:
        raise InvalidInput(f"Mirrors of type {value!r} are not supported by this server yet",
                           "Use --type conda, python_simple or CRAN", code="unsupported_mirror_type")
    return str(value)


def _mode(value: Any) -> str:
    value = value or "passive"
    if value not in flt.MIRROR_MODES:
        raise InvalidInput(f"Unknown mirror mode {value!r}", "Use active or passive",
                           code="invalid_mirror_mode")
    return str(value)


def next_run(cron: str, after: datetime | None = None) -> datetime:
    return croniter(cron, after or datetime.now(UTC)).get_next(datetime)


# --- access -------------------------------------------------------------------------------------

def _require_manage(p: Principal, channel: Channel) -> None:
    # A mirror makes the server fetch from the URLs it is given, so managing mirrors is an admin's
    # job, as in Anaconda Server, not every channel owner's. That is the real reason a user is
    # refused, so it is said before any missing scope (which no token of theirs could ever carry).
    channel_service.require_read(p, channel)
    if p.authenticated and not p.is_admin:
        raise Forbidden("Only administrators can manage mirrors",
                        "Ask an administrator to create or change the mirror", code="admin_required")
    channel_service.require_write(p, channel, "mirror:manage")


def _require_view(p: Principal, channel: Channel) -> None:
    channel_service.require_read(p, channel, "mirror:view")


def get_mirror(db: Session, channel: Channel, mirror_id: str) -> Mirror:
    m = db.scalar(select(Mirror).where(Mirror.channel_id == channel.id,
                                       (Mirror.id == mirror_id) | (Mirror.name == mirror_id)))
    if m is None:
        raise NotFound(f"No mirror {mirror_id!r} in channel {channel.path!r}",
                       f"List the mirrors with `conda repo mirror --list {channel.path}`",
                       code="mirror_not_found")
    return m


# --- create / update / delete -------------------------------------------------------------------

def _check_egress(url: str | None, egress: EgressPolicy | None) -> None:
    if url and egress is not None:
        check_url(egress, url)


def _box(env: MirrorEnv | None) -> SecretBox:
    if env is None or env.secrets is None:
        raise TaipanError("This server cannot store upstream credentials (no secrets key)",
                          "Set TAIPAN_SECRETS__KEY or make $TAIPAN_HOME writable", code="no_secrets_key",
                          status=500)
    return env.secrets


def _set_source(m: Mirror, url: str, env: MirrorEnv | None) -> None:
    """The source as shown (credentials masked) in ``source_root``; the real URL, encrypted, apart.
    The masked form sent back unchanged (a client that PUTs the whole mirror) keeps the secret."""
    if m.source_root and url == m.source_root and m.source_secret:
        return
    m.source_root = redact_url(url) or url
    m.source_secret = _box(env).seal(url) if has_credentials(url) else None


def _set_proxy(m: Mirror, url: str | None, env: MirrorEnv | None) -> None:
    if url and m.proxy and url == m.proxy and m.proxy_secret:
        return
    m.proxy = redact_url(url) if url else None
    m.proxy_secret = _box(env).seal(url) if url and has_credentials(url) else None


def real_source(m: Mirror, box: SecretBox | None) -> str:
    """The URL to fetch from: the decrypted one when the source has credentials."""
    if m.source_secret:
        if box is None:
            raise UpstreamError("The mirror's credentials cannot be read (no secrets key)",
                                "Set TAIPAN_SECRETS__KEY as on the server", code="secret_unreadable")
        return box.open(m.source_secret)
    return m.source_root


def real_proxy(m: Mirror, box: SecretBox | None) -> str | None:
    if m.proxy_secret and box is not None:
        return box.open(m.proxy_secret)
    return m.proxy


def create_mirror(db: Session, p: Principal, channel: Channel, body: dict[str, Any], *,
                  env: MirrorEnv | None = None) -> tuple[Mirror, bool]:
    """Create a mirror from the API body; return it and whether to enqueue a run after commit.
    A source that resolves outside the egress policy is refused here already."""
    _require_manage(p, channel)
    name = _name(body.get("mirror_name") or body.get("name"))
    if db.scalar(select(Mirror.id).where(Mirror.channel_id == channel.id, Mirror.name == name)):
        raise Conflict(f"A mirror named {name!r} already exists in {channel.path!r}",
                       "Choose another name, or change it with --update", code="mirror_exists")
    mtype = _type(body.get("mirror_type") or body.get("type"))
    cron = flt.validate_cron(body.get("cron") or flt.DEFAULT_CRON)
    source = _url(body.get("source_root") or body.get("source"))
    assert source is not None
    m = Mirror(channel_id=channel.id, name=name, mirror_type=mtype,
               mode=_mode(body.get("mirror_mode") or body.get("mode")),
               cron=cron, filters=flt.normalize_mirror_filters(body.get("filters"), mtype),
               state="pending", sync_state=initial_sync_state(), next_run_at=next_run(cron),
               created_by=p.username)
    _set_proxy(m, _url(body.get("proxy"), "proxy", allow_empty=True), env)
    _check_egress(source, env.egress if env else None)  # last: it resolves the host name
    _set_source(m, source, env)
    db.add(m)
    db.flush()
    channel_service.add_event(db, channel, "mirror_created", p, mirror=name, source=m.source_root)
    return m, bool(body.get("run_now")) and request_run(db, m)


def update_mirror(db: Session, p: Principal, channel: Channel, m: Mirror, body: dict[str, Any], *,
                  env: MirrorEnv | None = None) -> bool:
    """Apply the fields present in ``body``; the next run replaces the mirror's contents.
    Return True when a run must be enqueued after commit (``run_now``)."""
    _require_manage(p, channel)
    new_name = body.get("mirror_name") or body.get("name")
    if new_name and new_name != m.name:
        _name(new_name)
        if db.scalar(select(Mirror.id).where(Mirror.channel_id == channel.id, Mirror.name == new_name)):
            raise Conflict(f"A mirror named {new_name!r} already exists in {channel.path!r}",
                           "Choose another name", code="mirror_exists")
        m.name = new_name
    if body.get("mirror_type") or body.get("type"):
        m.mirror_type = _type(body.get("mirror_type") or body.get("type"))
    if body.get("mirror_mode") or body.get("mode"):
        m.mode = _mode(body.get("mirror_mode") or body.get("mode"))
    source = _url(body.get("source_root") or body.get("source")) if (
        body.get("source_root") or body.get("source")) else None
    if body.get("cron"):
        m.cron = flt.validate_cron(body["cron"])
        m.next_run_at = next_run(m.cron)
    if "proxy" in body:
        _set_proxy(m, _url(body.get("proxy"), "proxy", allow_empty=True), env)
    if "filters" in body:
        m.filters = flt.normalize_mirror_filters(body.get("filters"), m.mirror_type)
    if source is not None:
        if source != m.source_root:
            _check_egress(source, env.egress if env else None)  # last: it resolves the host name
        _set_source(m, source, env)
    m.updated_at = utcnow()
    channel_service.add_event(db, channel, "mirror_updated", p, mirror=m.name)
    return bool(body.get("run_now")) and request_run(db, m)


def delete_mirror(db: Session, p: Principal, channel: Channel, m: Mirror) -> set[str]:
    """Delete the mirror and the files it brought; return the subdirs whose index changed."""
    _require_manage(p, channel)
    rows = db.execute(select(File.id, File.subdir, File.filename).where(File.mirror_id == m.id)).all()
    for i in range(0, len(rows), 500):
        db.execute(delete(File).where(File.id.in_([r.id for r in rows[i:i + 500]])))
    log_changes(db, channel.id, [(r.subdir, r.filename) for r in rows], even_if_frozen=True)  # gone
    forget_held(db, channel.id, [(r.subdir, r.filename) for r in rows])  # nothing of theirs waits
    # A run in progress notices the missing row at its next heartbeat and gives up.
    db.delete(m)
    channel_service.add_event(db, channel, "mirror_deleted", p, mirror=m.name, files=len(rows))
    return {r.subdir for r in rows}


# --- runs ---------------------------------------------------------------------------------------

def request_run(db: Session, m: Mirror) -> bool:
    """Mark the mirror pending; True if a job must be enqueued after commit. A running mirror is
    marked to run again when it finishes, with the settings as they are then."""
    if m.state == "running" and not is_stale(m):
        m.cache = {**(m.cache or {}), "rerun": True}
        return False
    state = initial_sync_state()
    state["queued_at"] = utcnow().isoformat()
    m.state, m.stop_requested, m.sync_state, m.run_id = "pending", False, state, None
    return True


def enqueue_runs(env: MirrorEnv, mirror_ids: list[str]) -> None:
    if env.enqueue is None:
        log.warning("no job queue: mirror runs %s not enqueued", mirror_ids)
        return
    for mirror_id in mirror_ids:
        try:
            env.enqueue(JOB_SYNC, {"mirror_id": mirror_id})
        except Exception as exc:  # e.g. Redis is down: say so on the mirror instead of a bare 500
            log.warning("could not queue mirror run %s", mirror_id, exc_info=True)
            _mark_not_queued(env, mirror_id, f"{type(exc).__name__}: {exc}")


def _mark_not_queued(env: MirrorEnv, mirror_id: str, reason: str) -> None:
    message = (f"The run could not be queued ({reason}). Check the job queue (Redis, "
               "TAIPAN_JOBS__REDIS_URL), then run `conda repo mirror --restart NAME`")
    with env.sessions() as db:
        m = db.get(Mirror, mirror_id)
        if m is not None and m.state == "pending":
            m.state = "failed"
            m.sync_state = {**(m.sync_state or initial_sync_state()), "last_exception": message}
            m.updated_at = utcnow()
            db.commit()


def stop_mirror(db: Session, p: Principal, channel: Channel, m: Mirror) -> None:
    _require_manage(p, channel)
    if m.state not in ("running", "pending"):
        raise Conflict(f"Mirror {m.name!r} is {m.state}, not running", "Only a running or pending mirror "
                       "can be stopped; use --restart to run it again", code="mirror_not_running")
    m.cache = {k: v for k, v in (m.cache or {}).items() if k != "rerun"}
    if m.state == "pending" or is_stale(m):
        m.state = "stopped"
        m.sync_state = {**(m.sync_state or {}), "last_exception": "stopped on request"}
    m.stop_requested = True
    m.updated_at = utcnow()


def run_job(env: MirrorEnv, payload: dict[str, Any]) -> None:
    run_mirror(env, str(payload["mirror_id"]))


def register_jobs(registry: JobRegistry, env: MirrorEnv) -> None:
    registry.register(JOB_SYNC, lambda payload: run_job(env, payload))


def due_runs(env: MirrorEnv, now: datetime) -> list[DueRun]:
    """The scheduler's source: mirrors whose cron time has come, and runs abandoned by a dead worker."""
    with env.sessions() as db:
        rows = db.execute(select(Mirror.id, Mirror.next_run_at, Mirror.cron).where(
            Mirror.next_run_at <= now)).all()
        running = db.scalars(select(Mirror).where(Mirror.state == "running")).all()
        stale = [(m.id, m.heartbeat_at or now) for m in running if is_stale(m, now)]
    due = [DueRun(mid, fire_at, JOB_SYNC, {"mirror_id": mid},
                  claim=_claim_schedule(env, mid, fire_at, cron, now)) for mid, fire_at, cron in rows]
    due += [DueRun(f"{mid}:recover", at, JOB_SYNC, {"mirror_id": mid}, claim=_claim_recovery(env, mid))
            for mid, at in stale]
    return due


def _claim_schedule(env: MirrorEnv, mirror_id: str, fire_at: datetime, cron: str, now: datetime) -> Any:
    def claim() -> bool:
        # Compare-and-set on next_run_at: exactly one process advances a given schedule.
        with env.sessions() as db:
            res = db.execute(update(Mirror).where(Mirror.id == mirror_id, Mirror.next_run_at == fire_at)
                             .values(next_run_at=next_run(cron, now)))
            m = db.get(Mirror, mirror_id) if res.rowcount == 1 else None
            go = m is not None and request_run(db, m)
            db.commit()
            return go
    return claim


def _claim_recovery(env: MirrorEnv, mirror_id: str) -> Any:
    def claim() -> bool:
        with env.sessions() as db:
            m = db.get(Mirror, mirror_id)
            go = m is not None and is_stale(m) and request_run(db, m)
            db.commit()
            return go
    return claim


def recover_local(env: MirrorEnv) -> list[str]:
    """At start-up of the in-process backend: re-enqueue runs this host lost in a restart."""
    with env.sessions() as db:
        ids = []
        for m in db.scalars(select(Mirror).where(Mirror.state.in_(("pending", "running")))):
            if (m.state == "pending" and (m.sync_state or {}).get("queued_at")) or is_stale(m):
                if request_run(db, m):
                    ids.append(m.id)
        db.commit()
    enqueue_runs(env, ids)
    return ids


# --- JSON ---------------------------------------------------------------------------------------

def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def public_sync_state(state: dict[str, Any] | None, p: Principal | None) -> dict[str, Any]:
    """The sync state as ``p`` may see it: administrators get the upstream's own error texts;
    everybody else only their category ("upstream unreachable", "HTTP 404"), so that neither
    credentials nor the answers of internal hosts reach readers of a public channel."""
    out = dict(state or initial_sync_state())
    if p is not None and p.is_admin:
        return out
    if out.get("last_exception"):
        out["last_exception"] = out.get("last_error_category") or error_category(None, out["last_exception"])
    if isinstance(out.get("previous"), dict) and out["previous"].get("last_exception"):
        prev = dict(out["previous"])
        prev["last_exception"] = prev.get("last_error_category") or error_category(None, prev["last_exception"])
        out["previous"] = prev
    return out


def mirror_json(m: Mirror, channel: Channel, p: Principal | None = None) -> dict[str, Any]:
    """The per-channel form (mirror_* keys, as conda-repo-cli reads them)."""
    return {
        "mirror_id": m.id, "mirror_name": m.name, "source_root": redact_url(m.source_root),
        "mirror_mode": m.mode, "mirror_type": m.mirror_type, "cron": m.cron, "proxy": redact_url(m.proxy),
        "source_has_credentials": bool(m.source_secret), "filters": m.filters or {},
        "state": m.state, "last_run_at": _iso(m.last_run_at), "created_at": _iso(m.created_at),
        "updated_at": _iso(m.updated_at), "created": _iso(m.created_at), "next_run_at": _iso(m.next_run_at),
        "channel": channel.path, "sync_state": public_sync_state(m.sync_state, p),
    }


def global_mirror_json(m: Mirror, channel: Channel, p: Principal | None = None) -> dict[str, Any]:
    """The global-list form (/api/mirrors uses plain keys and nests the channel)."""
    top = channel.parent if channel.parent is not None else channel
    out = {
        "id": m.id, "name": m.name, "source_root": redact_url(m.source_root), "type": m.mirror_type,
        "mode": m.mode, "state": m.state, "proxy": redact_url(m.proxy), "cron": m.cron,
        "source_has_credentials": bool(m.source_secret), "filters": m.filters or {},
        "last_run_at": _iso(m.last_run_at), "created_at": _iso(m.created_at),
        "updated_at": _iso(m.updated_at), "next_run_at": _iso(m.next_run_at),
        "channel": {"name": top.name, "privacy": top.privacy},
        "sync_state": public_sync_state(m.sync_state, p),
    }
    if channel.parent is not None:
        out["subchannel"] = {"name": channel.name}
    return out


def list_channel_mirrors(db: Session, p: Principal, channel: Channel) -> list[Mirror]:
    _require_view(p, channel)
    return list(db.scalars(select(Mirror).where(Mirror.channel_id == channel.id).order_by(Mirror.name)))


def list_all_mirrors(db: Session, p: Principal, offset: int = 0, limit: int = 100,
                     sort: str = "mirror_name") -> tuple[int, list[tuple[Mirror, Channel]]]:
    channel_service.require_scope(p, "mirror:view")
    rows = db.execute(select(Mirror, Channel).join(Channel, Channel.id == Mirror.channel_id)).all()
    visible = [(m, c) for m, c in rows if channel_service.can_read(p, c)]
    key = sort.lstrip("-")
    field = {"mirror_name": "name", "name": "name", "state": "state", "created_at": "created_at",
             "last_run_at": "last_run_at", "updated_at": "updated_at"}.get(key, "name")
    visible.sort(key=lambda mc: (getattr(mc[0], field) is None, getattr(mc[0], field) or 0, mc[1].path),
                 reverse=sort.startswith("-"))
    return len(visible), visible[offset:offset + limit] if limit else visible[offset:]


# --- passive files ------------------------------------------------------------------------------

def passive_stream(env: MirrorEnv, file_id: str) -> Iterator[bytes]:
    """Fetch a passive file from upstream, yielding its bytes while storing them; then mark it
    active so that every later request is served from the blob store."""
    with env.sessions() as db:
        f = db.get(File, file_id)
        if f is None:
            raise NotFound("The file is gone", "Fetch repodata.json again", code="file_not_found")
        m = db.get(Mirror, f.mirror_id) if f.mirror_id else None
        if m is None and f.source_url and MASK in f.source_url:
            m = _mirror_for_masked(db, f.source_url)  # a copy of a mirrored file in another channel
        url, sha, size, md5 = f.source_url, f.sha256 or None, f.size or None, f.md5 or None
        proxy = None
        if m is not None and url:
            url, proxy = unmask(url, real_source(m, env.secrets)), real_proxy(m, env.secrets)
    if not url:
        raise NotFound(f"{f.filename} has no upstream source", "Run the mirror again",
                       code="file_not_available")
    if sha and env.blobs.touch(sha):  # stored meanwhile (or by another channel); touched for the cleanup
        _mark_active(env, file_id, sha)
        yield from env.blobs.iter_bytes(sha)
        return
    tmp = env.blobs.tempdir() / f"passive-{file_id}-{uuid.uuid4().hex[:12]}.part"
    try:
        with env.upstream_factory(url.rsplit("/", 1)[0], proxy=proxy, retries=2) as upstream, \
                open(tmp, "wb") as sink:
            yield from upstream.stream_to(url, sink, sha256=sha, size=size, md5=md5)
        actual = sha or _sha256_of(tmp)
        env.blobs.put_file(actual, tmp, move=True)
        _mark_active(env, file_id, actual)
    except UpstreamError as exc:
        log.warning("passive fetch of %s failed: %s", redact_url(url), scrub(exc.message, secrets_of(url)))
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _mirror_for_masked(db: Session, url: str) -> Mirror | None:
    for m in db.scalars(select(Mirror).where(Mirror.source_secret.is_not(None))):
        if url.startswith(m.source_root.rstrip("/") + "/"):
            return m
    return None


def _sha256_of(path: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _mark_active(env: MirrorEnv, file_id: str, sha256: str) -> None:
    # The record (and so the published index) does not change: no IndexChange row is needed.
    with env.sessions() as db:
        db.execute(update(File).where(File.id == file_id).values(state="active", sha256=sha256,
                                                                   updated_at=utcnow()))
        db.commit()
