"""Channel pages: the list, one channel (or subchannel) with its packages, one package's files, and
the forms that create channels, change their settings and upload packages.

Every route exists for a channel (/ui/channels/{ch}/...) and a subchannel (/ui/channels/{ch}/{sub}/...).
Access rules are the services' own (the same calls as web/api/channels.py), so a page shows exactly
what the API would.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from taipan.db.models import Channel
from taipan.domain import families
from taipan.domain.conda import safe_basename
from taipan.domain.permissions import PRIVACY_LEVELS, Principal, can_write_channel
from taipan.errors import InvalidInput
from taipan.services import artifacts, channels, reports, serving, uploads
from taipan.web.deps import RuntimeDep, SessionDep, base_url
from taipan.web.ui.previews import MAX_PREVIEW, PREVIEWS, bar_chart
from taipan.web.ui.render import UIRoute, redirect, render
from taipan.web.ui.session import CsrfDep, MemberDep, VisitorDep

router = APIRouter(route_class=UIRoute, include_in_schema=False)
CH = "/ui/channels/{ch}"
SUB = "/ui/channels/{ch}/{sub}"
PER_PAGE = 25
HISTORY = 20


def _path(request: Request) -> str:
    pp = request.path_params
    return f"{pp['ch']}/{pp['sub']}" if "sub" in pp else pp["ch"]


def _readable(db: Session, p: Principal, request: Request) -> Channel:
    channel = channels.get_channel(db, _path(request))
    channels.require_read(p, channel, f"{channels.kind_of(channel)}:view")
    return channel


def _repo_url(request: Request, channel: Channel) -> str:
    return f"{base_url(request)}/api/repo/{channel.path}"


@router.get("/ui/channels")
def channel_list(request: Request, p: VisitorDep, db: SessionDep) -> HTMLResponse:
    items = [channels.channel_json(db, c) for c in channels.visible_channels(db, p)]
    return render(request, "channels.html", channels=items, privacy_levels=PRIVACY_LEVELS)


@router.post("/ui/channels")
def create_channel(request: Request, _: CsrfDep, p: MemberDep, db: SessionDep, name: str = Form(""),
                   privacy: str = Form("public"), description: str = Form("")) -> Response:
    channel = channels.create_channel(db, p, name.strip(), privacy=privacy,
                                      description=description.replace("\r\n", "\n"))
    db.commit()
    return redirect(request, f"/ui/channels/{channel.path}", f"Channel {channel.path} created")


def _channel_view(db: Session, p: Principal, channel: Channel, page: int, q: str) -> dict[str, Any]:
    kind = channels.kind_of(channel)
    total, packages = artifacts.list_artifacts(db, p, channel, (page - 1) * PER_PAGE, PER_PAGE, q or None)
    subchannels: list[dict[str, Any]] = []
    if channel.parent_id is None:
        channels.require_read(p, channel, "subchannel:view")
        subchannels = [channels.channel_json(db, c) for c in channels.visible_channels(db, p, parent=channel)]
    channels.require_read(p, channel, f"{kind}:history")
    _, events = channels.history(db, channel, 0, HISTORY)
    return {"channel": channels.channel_json(db, channel), "kind": kind, "packages": packages,
            "total": total, "page": page, "pages": max(1, -(-total // PER_PAGE)), "q": q,
            "subchannels": subchannels, "events": events, "privacy_levels": PRIVACY_LEVELS,
            "can_write": can_write_channel(p, channels.owner_ids(channel))}


@router.get(CH)
@router.get(SUB)
def channel_page(request: Request, p: VisitorDep, db: SessionDep, page: int = Query(1, ge=1, le=1_000_000),
                 q: str = Query("", max_length=200)) -> HTMLResponse:
    channel = _readable(db, p, request)
    view = _channel_view(db, p, channel, page, q.strip())
    repo_url = _repo_url(request, channel)
    stats = reports.download_stats(db, channel)
    charts = {"total": stats["total"],
              "days": bar_chart(stats["days"], title=f"Downloads per day, last {reports.DAYS} days"),
              "packages": bar_chart(stats["packages"], title="Downloads per package", horizontal=True)}
    return render(request, "channel.html", repo_url=repo_url, installs=_installs(view["packages"], repo_url),
                  charts=charts, **view)


def _installs(packages: list[dict[str, Any]], repo_url: str) -> list[str]:
    """How to install from the channel, for each family among the listed packages (the first
    family of the registry, conda, for an empty channel)."""
    present = {pkg["family"] for pkg in packages}
    found = [f for f in families.implemented() if f.name in present] or families.implemented()[:1]
    return [f.install_command("<package>", repo_url) for f in found]


@router.get(CH + "/packages/{name}")
@router.get(SUB + "/packages/{name}")
def package_page(request: Request, name: str, p: VisitorDep, db: SessionDep,
                 family: str = Query("conda", max_length=40)) -> HTMLResponse:
    channel = _readable(db, p, request)
    total, files = artifacts.list_files(db, p, channel, family, name, 0, 0)
    latest = max(files, key=lambda f: f.created_at).meta or {}
    return render(request, "package.html", channel=channels.channel_json(db, channel), name=name,
                  family=family, files=files, total=total, about=_about(family, name, latest),
                  previewable=family in PREVIEWS,
                  repo_url=_repo_url(request, channel), install=_install(family, name, _repo_url(request, channel)))


@router.get("/ui/preview/{ch}")
@router.get("/ui/preview/{ch}/{sub}")
def preview_page(request: Request, p: VisitorDep, db: SessionDep, rt: RuntimeDep,
                 ckey: str = Query(..., max_length=300)) -> HTMLResponse:
    """A notebook rendered (sanitised, no scripts), an environment or project file, an SBOM."""
    channel = _readable(db, p, request)
    channels.require_read(p, channel, "artifact:view")
    f = serving.find_file(rt.sessions, channel.id, ckey)
    renderer = PREVIEWS.get(f.family)
    body = None
    note = None
    if renderer is None:
        note = "There is no preview of this kind of file."
    elif f.size > MAX_PREVIEW or f.state != "active":
        note = "This file is too large to preview (or not stored here yet); download it instead."
    else:
        with rt.blobs.open(f.sha256) as fh:
            data = fh.read(MAX_PREVIEW + 1)
        try:
            body = renderer(data)
        except Exception:  # a stored file the previewer cannot read is shown as not previewable
            note = "This file could not be rendered; download it instead."
    return render(request, "preview.html", channel=channels.channel_json(db, channel), file=f, body=body,
                  note=note)


def _install(family: str, name: str, repo_url: str) -> str | None:
    try:
        return families.get(family).install_command(name, repo_url)
    except InvalidInput:
        return None


def _about(family: str, name: str, latest_meta: dict[str, Any]) -> dict[str, Any]:
    """Summary, license and home page of a package for its page, as its family describes them."""
    if "about.json" in latest_meta:
        return dict(latest_meta["about.json"])
    try:
        meta = families.get(family).package_metadata(name, latest_meta, [], "")
    except InvalidInput:
        return {}
    return {k: meta.get(k) for k in ("summary", "license", "home")}


@router.post(CH + "/settings")
@router.post(SUB + "/settings")
def change_settings(request: Request, _: CsrfDep, p: MemberDep, db: SessionDep, privacy: str = Form(""),
                    description: str | None = Form(None)) -> Response:
    channel = channels.get_channel(db, _path(request))
    changes: dict[str, Any] = {}
    if privacy and privacy != channel.privacy:
        changes["privacy"] = privacy
    if description is not None and description.replace("\r\n", "\n") != channel.description:
        changes["description"] = description.replace("\r\n", "\n")
    # Called even with no changes: it is also the permission check.
    channels.update_channel(db, p, channel, changes)
    db.commit()
    notice = f"Saved: {', '.join(sorted(changes))}" if changes else "Nothing to change"
    return redirect(request, f"/ui/channels/{channel.path}", notice)


@router.post(CH + "/subchannels")
def create_subchannel(request: Request, _: CsrfDep, p: MemberDep, db: SessionDep, name: str = Form(""),
                      privacy: str = Form("")) -> Response:
    channel = channels.create_channel(db, p, name.strip(), parent_path=_path(request), privacy=privacy or None)
    db.commit()
    return redirect(request, f"/ui/channels/{channel.path}", f"Subchannel {channel.path} created")


@router.post(CH + "/upload")
@router.post(SUB + "/upload")
def upload(request: Request, _: CsrfDep, p: MemberDep, db: SessionDep, rt: RuntimeDep,
           content: UploadFile | None = File(None)) -> Response:
    channel = channels.get_channel(db, _path(request))
    channels.require_write(p, channel, "artifact:create")  # before spooling anything
    raw_name = content.filename if content is not None else ""
    if content is None or not raw_name:
        raise InvalidInput("No file was chosen", "Choose a .conda or .tar.bz2 package to upload",
                           code="no_file")
    if safe_basename(raw_name) != raw_name:
        raise InvalidInput(f"Invalid file name {raw_name[:100]!r}",
                           "Send the bare file name, without directories", code="invalid_filename")
    spooled = uploads.spool(content.file, rt.blobs.tempdir(), rt.settings.server.max_upload_size)
    try:
        row = uploads.upload(db, rt.blobs, p, channel, spooled, raw_name)
        db.commit()
    finally:
        spooled.discard()
    rt.indexer.notify(channel.id, {row.subdir})
    return redirect(request, f"/ui/channels/{channel.path}", f"Uploaded {row.ckey}")
