"""Uploads, for every family, through each protocol clients speak.

- conda-repo-cli: ``POST /api/channels/<ch>[/subchannels/<sub> | /<sub>]/artifacts`` with the form
  fields ``content``, ``filetype`` and ``size`` (201, the file JSON).
- twine (the legacy PyPI upload API) and Anaconda Server's documented form post (e.g. R packages with
  ``filetype=cran_source_package``): ``POST /api/repo/<ch>[/<sub>][/]`` with ``content`` and
  ``filetype``; twine adds ``:action=file_upload``, ``sha256_digest``/``md5_digest``, ``name`` and
  ``version``, which are checked against the file. A token in the path (``/api/repo/t/<token>/...``) is
  turned into an X-Auth header by the package-serving layer before the request gets here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse

from taipan.db.models import Channel
from taipan.domain.conda import safe_basename
from taipan.domain.permissions import Principal
from taipan.errors import InvalidInput
from taipan.runtime import Runtime
from taipan.services import artifacts, channels, uploads
from taipan.web.deps import RuntimeDep, SessionDep, UserDep, base_url

router = APIRouter(tags=["uploads"])


def _store(request: Request, rt: Runtime, db: Any, p: Principal, channel: Channel, content: UploadFile,
           filetype: str, size: int | None, checks: uploads.UploadChecks | None = None,
           subdir: str = "") -> dict[str, Any]:
    # Rights before anything else: nothing is spooled for a caller who may not upload here, and a
    # hidden channel answers like a missing one whatever the form holds.
    channels.require_write(p, channel, "artifact:create")
    uploads.check_filetype(filetype)
    raw_name = content.filename or ""
    if safe_basename(raw_name) != raw_name:
        raise InvalidInput(f"Invalid file name {raw_name[:100]!r}",
                           "Send the bare file name, without directories", code="invalid_filename")
    spooled = uploads.spool(content.file, rt.blobs.tempdir(), rt.settings.server.max_upload_size)
    try:
        row = uploads.upload(db, rt.blobs, p, channel, spooled, raw_name, filetype=filetype,
                             declared_size=size, checks=checks, subdir=subdir)
        db.flush()
        # The answer is built before the commit: nothing fallible runs after it (a 500 never commits).
        body = artifacts.file_json(row, channel, base_url(request))
        db.commit()
    finally:
        spooled.discard()
    rt.indexer.notify(channel.id, {row.subdir})
    return body


def _path(request: Request) -> str:
    pp = request.path_params
    return f"{pp['ch']}/{pp['sub']}" if "sub" in pp else pp["ch"]


@router.post("/channels/{ch}/artifacts", status_code=201)
@router.post("/channels/{ch}/subchannels/{sub}/artifacts", status_code=201)
@router.post("/channels/{ch}/{sub}/artifacts", status_code=201)
def upload(request: Request, p: UserDep, db: SessionDep, rt: RuntimeDep,
           content: UploadFile = File(...), filetype: str = Form(""),
           size: int = Form(None, description="The file's size in bytes, checked when given"),
           subdir: str = Form("", max_length=64)) -> dict[str, Any]:
    channel = channels.get_channel(db, _path(request))
    return _store(request, rt, db, p, channel, content, filetype, size, subdir=subdir)


_REPO_UPLOAD = {"responses": {201: {"description": "Stored (the documented form post); the file's JSON"},
                              200: {"description": "Stored (twine, with :action=file_upload); the file's JSON"}}}


@router.post("/repo/{ch}", **_REPO_UPLOAD)
@router.post("/repo/{ch}/", **_REPO_UPLOAD)
@router.post("/repo/{ch}/{sub}", **_REPO_UPLOAD)
@router.post("/repo/{ch}/{sub}/", **_REPO_UPLOAD)
def repo_upload(request: Request, p: UserDep, db: SessionDep, rt: RuntimeDep,
                content: UploadFile = File(...), filetype: str = Form(""),
                action: str = Form("", alias=":action"), sha256_digest: str = Form(""),
                md5_digest: str = Form(""), name: str = Form(""), version: str = Form(""),
                subdir: str = Form("", max_length=64)) -> JSONResponse:
    if action and action != "file_upload":
        raise InvalidInput(f"Unsupported action {action!r}", "Only :action=file_upload is supported",
                           code="unsupported_action")
    channel = channels.get_channel(db, _path(request))
    checks = uploads.UploadChecks(sha256=sha256_digest, md5=md5_digest, name=name, version=version)
    body = _store(request, rt, db, p, channel, content, filetype, None, checks, subdir=subdir)
    # twine (PyPI's protocol) expects 200; the documented form post, like conda-repo-cli, gets 201.
    return JSONResponse(body, status_code=200 if action else 201)
