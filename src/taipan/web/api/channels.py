"""/api/channels: channels, subchannels, their history, artifacts, uploads and bulk actions.

Every route exists for a channel (/channels/{ch}/...) and for a subchannel
(/channels/{ch}/subchannels/{sub}/...). Uploads are in web/api/uploads.py.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from taipan.domain.families import KNOWN as KNOWN_FAMILIES
from taipan.domain.families import implemented as implemented_families
from taipan.domain.names import CHANNEL_NAME_RE, MAX_CHANNEL_NAME, RESERVED_CHANNEL_NAMES, RESERVED_SUBCHANNEL_NAMES
from taipan.domain.permissions import PRIVACY_LEVELS
from taipan.services import artifacts, channels, yanking
from taipan.services.artifacts import BULK_ACTIONS, SEARCH_SORT_KEYS
from taipan.services.channels import MAX_DESCRIPTION, MAX_FILTERS_JSON
from taipan.web.api.answers import ChannelOut, ChannelPage, Page, doc
from taipan.web.deps import PrincipalDep, RuntimeDep, SessionDep, UserDep, base_url
from taipan.web.repo.common import channel_cache

router = APIRouter(tags=["channels"])
CH = "/channels/{ch}"
SUB = "/channels/{ch}/subchannels/{sub}"


def _create_schema(reserved: frozenset[str]) -> Any:
    """What the service accepts (it answers anything else with a 400 and a hint)."""
    def extra(schema: dict[str, Any]) -> None:
        props = schema["properties"]
        props["name"].update(pattern=CHANNEL_NAME_RE.pattern, minLength=1, maxLength=MAX_CHANNEL_NAME,
                             **{"not": {"enum": sorted(reserved)}})
        props["privacy"] = {"anyOf": [{"type": "string", "enum": [*PRIVACY_LEVELS, ""]}, {"type": "null"}],
                            "description": "Default: the parent's privacy, or public"}
        props["description"].update(maxLength=MAX_DESCRIPTION)
    return extra


class CreateBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=_create_schema(RESERVED_CHANNEL_NAMES))

    name: str
    privacy: str | None = None
    description: str | None = ""


class CreateSubBody(CreateBody):
    model_config = ConfigDict(json_schema_extra=_create_schema(RESERVED_SUBCHANNEL_NAMES))


class YankBody(BaseModel):
    yanked: bool = True
    reason: str = ""
    version: str | None = None
    ckeys: list[str] | None = None


class BulkBody(BaseModel):
    model_config = ConfigDict(json_schema_extra=lambda schema: (
        schema["properties"]["action"].update(enum=list(BULK_ACTIONS)),
        schema["properties"]["items"].update(minItems=1, items={
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string"}, "family": {"type": "string", "enum": list(KNOWN_FAMILIES)},
                           "ckey": {"type": "string"}}}))[-1])

    action: str
    items: list[dict[str, Any]]
    target_channel: str | None = None
    target_subchannel: str | None = None


def _update_body(reserved: frozenset[str]) -> dict[str, Any]:
    """The changes PUT accepts (any subset; ``id``, ``owners`` and ``parent`` are ignored, for
    clients that send back what GET gave them)."""
    names = {"type": "string", "pattern": CHANNEL_NAME_RE.pattern, "minLength": 1, "maxLength": MAX_CHANNEL_NAME,
             "not": {"enum": sorted(reserved)}}
    licenses = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]}
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": False, "properties": {
            "privacy": {"type": "string", "enum": list(PRIVACY_LEVELS)},
            "description": {"anyOf": [{"type": "string", "maxLength": MAX_DESCRIPTION}, {"type": "null"}]},
            "name": names, "frozen": {"type": "boolean"},
            "filters": {"type": "object", "description": f"Mirror filters of the channel (at most {MAX_FILTERS_JSON} "
                        "bytes of JSON): license names and match specs that must parse",
                        "properties": {k: licenses for k in ("include_licenses", "exclude_licenses", "licenses",
                                                             "exclude_specs")}},
            "id": {}, "owners": {}, "parent": {}}}}}}


def _path(request: Request) -> str:
    pp = request.path_params
    return f"{pp['ch']}/{pp['sub']}" if "sub" in pp else pp["ch"]


# Bounds every paginated endpoint declares (and so validates, and documents in the schema): a
# database cannot take an OFFSET past 2**63, and no page needs more rows than this.
MAX_OFFSET = 1_000_000_000
MAX_LIMIT = 10_000
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip")]


def _limit(default: int) -> Any:
    return Query(default, ge=0, le=MAX_LIMIT, description="Rows per page")


@router.get("/channels", responses=doc(200, ChannelPage))
def list_channels(p: PrincipalDep, db: SessionDep, offset: int = Query(0, ge=0, le=1_000_000_000),
                  limit: int | None = Query(None, ge=0, le=10_000)) -> dict[str, Any]:
    """Every top-level channel the caller can reach (anonymous callers: the public ones); without
    ``limit`` all of them, as conda-repo-cli's wizard expects."""
    total, page = channels.visible_channels_page(db, p, offset, limit)
    return {"total_count": total, "items": [channels.channel_json(db, c) for c in page]}


@router.post("/channels", status_code=201, responses=doc(201, ChannelOut))
def create_channel(body: CreateBody, p: UserDep, db: SessionDep) -> dict[str, Any]:
    channel = channels.create_channel(db, p, body.name, privacy=body.privacy, description=body.description)
    answer = channels.channel_json(db, channel)  # before the commit: a failure after it would be a 500
    db.commit()
    return answer


@router.get(CH + "/subchannels", responses=doc(200, ChannelPage))
def list_subchannels(request: Request, p: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    parent = channels.get_channel(db, _path(request))
    channels.require_read(p, parent, "subchannel:view")
    items = [channels.channel_json(db, c) for c in channels.visible_channels(db, p, parent=parent)]
    return {"total_count": len(items), "items": items}


@router.post(CH + "/subchannels", status_code=201, responses=doc(201, ChannelOut))
def create_subchannel(request: Request, body: CreateSubBody, p: UserDep, db: SessionDep) -> dict[str, Any]:
    channel = channels.create_channel(db, p, body.name, parent_path=_path(request), privacy=body.privacy,
                                      description=body.description)
    answer = channels.channel_json(db, channel)
    db.commit()
    return answer


@router.get(CH, responses=doc(200, ChannelOut))
@router.get(SUB, responses=doc(200, ChannelOut))
def show_channel(request: Request, p: PrincipalDep, db: SessionDep) -> dict[str, Any]:
    channel = channels.get_channel(db, _path(request))
    channels.require_read(p, channel, f"{channels.kind_of(channel)}:view")
    return channels.channel_json(db, channel)


@router.put(CH, openapi_extra={"requestBody": _update_body(RESERVED_CHANNEL_NAMES)}, responses=doc(200, ChannelOut))
@router.put(SUB, openapi_extra={"requestBody": _update_body(RESERVED_SUBCHANNEL_NAMES)},
            responses=doc(200, ChannelOut))
def update_channel(request: Request, p: UserDep, db: SessionDep, rt: RuntimeDep,
                   body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    channel = channels.get_channel(db, _path(request))
    was_frozen = channel.frozen
    channels.update_channel(db, p, channel, body)
    db.flush()
    answer = channels.channel_json(db, channel)
    db.commit()
    if was_frozen and not channel.frozen:
        rt.indexer.invalidate(channel.id)  # unfreezing publishes what arrived meanwhile
    # Privacy and names take effect in this process's package serving at once (others of this
    # machine at once too, through the change bell rung at the commit; other machines' within 1 s).
    channel_cache(rt).clear()
    return answer


@router.delete(CH, status_code=202)
@router.delete(SUB, status_code=202)
def delete_channel(request: Request, p: UserDep, db: SessionDep, rt: RuntimeDep) -> Response:
    channel = channels.get_channel(db, _path(request))
    ids = channels.delete_channel(db, p, channel)
    db.commit()
    rt.indexer.forget(ids)
    channel_cache(rt).clear()
    return JSONResponse({"message": f"Channel {channel.path} removed"}, status_code=202)


@router.get(CH + "/history", responses=doc(200, Page))
@router.get(SUB + "/history", responses=doc(200, Page))
def history(request: Request, p: PrincipalDep, db: SessionDep, offset: Offset = 0,
            limit: int = _limit(50)) -> dict[str, Any]:
    channel = channels.get_channel(db, _path(request))
    channels.require_read(p, channel, f"{channels.kind_of(channel)}:history")
    total, events = channels.history(db, channel, offset, limit)
    return {"total_count": total, "items": [
        {"event_id": e.event_id, "event_type": e.event_type, "created": e.created.isoformat(),
         "data": e.data, "meta": e.meta} for e in events]}


@router.get(CH + "/artifacts", responses=doc(200, Page))
@router.get(SUB + "/artifacts", responses=doc(200, Page))
def list_artifacts(request: Request, p: PrincipalDep, db: SessionDep, offset: Offset = 0,
                   limit: int = _limit(50), q: str | None = Query(None, max_length=200)) -> dict[str, Any]:
    channel = channels.get_channel(db, _path(request))
    total, items = artifacts.list_artifacts(db, p, channel, offset, limit, q)
    return {"total_count": total, "items": items}


@router.get(CH + "/artifacts/{family}/{package}/files", responses=doc(200, Page))
@router.get(SUB + "/artifacts/{family}/{package}/files", responses=doc(200, Page))
def list_files(request: Request, family: str, package: str, p: PrincipalDep, db: SessionDep,
               offset: Offset = 0, limit: int = _limit(0)) -> dict[str, Any]:
    channel = channels.get_channel(db, _path(request))
    total, files = artifacts.list_files(db, p, channel, family, package, offset, limit)
    url = base_url(request)
    return {"total_count": total, "items": [artifacts.file_json(f, channel, url) for f in files]}


@router.put(CH + "/artifacts/bulk", status_code=202)
@router.put(SUB + "/artifacts/bulk", status_code=202)
def bulk(request: Request, body: BulkBody, p: UserDep, db: SessionDep, rt: RuntimeDep) -> JSONResponse:
    channel = channels.get_channel(db, _path(request))
    changed = artifacts.bulk(db, p, channel, body.action, body.items, body.target_channel,
                             body.target_subchannel)
    db.commit()
    for cid, items in changed.items():
        rt.indexer.notify(cid, {s for s, _ in items})
    return JSONResponse({"action": body.action, "count": sum(len(v) for v in changed.values())},
                        status_code=202)


# Families whose files PEP 592 yanking applies to (the others answer 400).
YANKABLE = [f.name for f in implemented_families() if f.yankable]


@router.put(CH + "/artifacts/{family}/{package}/yank")
@router.put(SUB + "/artifacts/{family}/{package}/yank")
def yank(request: Request, package: str, body: YankBody, p: UserDep, db: SessionDep, rt: RuntimeDep,
         family: str = PathParam(..., description="A family whose files can be yanked",
                                 json_schema_extra={"enum": YANKABLE})) -> dict[str, Any]:
    """PEP 592: yank (``yanked: true``, with a ``reason``) or unyank files of a package: all of
    them, those of one ``version``, or the given ``ckeys``."""
    channel = channels.get_channel(db, _path(request))
    changed = yanking.set_yanked(db, p, channel, family, package, yanked=body.yanked, reason=body.reason,
                                 version=body.version, ckeys=body.ckeys)
    url = base_url(request)
    items = [artifacts.file_json(f, channel, url) for f in changed]
    db.commit()
    rt.indexer.notify(channel.id, {f["subdir"] for f in items} if items else set())
    return {"yanked": body.yanked, "count": len(items), "items": items}


@router.get("/artifacts", responses=doc(200, Page))
def search(p: PrincipalDep, db: SessionDep, q: str = Query("", max_length=200), offset: Offset = 0,
           limit: int = _limit(50),
           sort: str = Query("-download_count", max_length=40, json_schema_extra={
               "pattern": r"^\s*[+-]*(" + "|".join(SEARCH_SORT_KEYS) + r")\s*$"}),
           family: str | None = Query(None, max_length=40, json_schema_extra={"enum": list(KNOWN_FAMILIES)}),
           ) -> dict[str, Any]:
    total, items = artifacts.search(db, p, q, offset, limit, family, sort)
    return {"total_count": total, "items": items, "sort": sort}
