"""One run of a python_simple mirror: read the upstream simple index (PEP 691 JSON when offered,
PEP 503 HTML otherwise) for the chosen projects, select files, download them (active) and publish
them into the channel's ``simple`` partition in one transaction (``mirror_sync._publish``), like a
conda mirror. Passive files are fetched, verified against the upstream sha256 and stored on first
request by the same passive-fetch path as conda files. Yanked upstream files stay yanked."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from sqlalchemy import select

from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File, utcnow
from taipan.domain import python_simple as ps
from taipan.domain.families.python import PARTITION
from taipan.domain.repodata import record_bytes
from taipan.domain.urls import redact_url
from taipan.errors import UpstreamError
from taipan.services import mirror_sync as ms
from taipan.services.mirror_runs import MirrorEnv, Progress


def sync(env: MirrorEnv, m: Mirror, channel: Channel, progress: Progress, source: str,
         proxy: str | None) -> dict[str, Any]:
    """``source`` and ``proxy`` are the real URLs (credentials included); ``m.source_root`` is the
    masked form for messages."""
    filters = m.filters or {}
    root = source.rstrip("/") + "/"
    with env.upstream_factory(source, proxy=proxy) as upstream:
        progress.step(1)
        projects = [str(p) for p in filters.get("projects") or []]
        if projects:
            from packaging.utils import canonicalize_name

            projects = sorted({str(canonicalize_name(p)) for p in projects})
        else:
            got = upstream.get_bytes(root, headers={"Accept": ps.JSON_ACCEPT})
            progress.contacted()
            if got.status_code == 404:
                raise UpstreamError(f"No simple index at {m.source_root}", "Give the index URL, e.g. "
                                    "https://pypi.org/simple", code="upstream_not_found")
            projects = ps.parse_root(got.content, got.headers.get("content-type"))
            if len(projects) > ps.MAX_PROJECTS_WITHOUT_LIST:
                raise UpstreamError(f"The upstream index lists {len(projects)} projects",
                                    "Name the projects to mirror with --projects (required above "
                                    f"{ps.MAX_PROJECTS_WITHOUT_LIST} projects)", code="projects_required")
        progress.step(2)
        files: list[ps.UpstreamFile] = []
        for i, project in enumerate(projects):
            page_url = f"{root}{project}/"
            got = upstream.get_bytes(page_url, headers={"Accept": ps.JSON_ACCEPT})
            if got.status_code != 404:
                files.extend(ps.parse_project(project, got.content, got.headers.get("content-type"),
                                              str(got.url)))
            progress.contacted()
            progress.percent(100 * (i + 1) / max(len(projects), 1))
            progress.check()
        progress.step(3)
        kept = _select(files, filters, progress)
        progress.step(4)
        plan = _plan(env, m, channel, kept)
        ms._report_conflicts(progress, plan.conflicts)
        ms._fetch_active(env, upstream, plan, progress)
        for row in plan.add + plan.update:  # a hash learnt by downloading goes into the page too
            rec = orjson.loads(row["record"])
            if not rec.get("sha256") and row["sha256"]:
                rec.update(sha256=row["sha256"], size=row["size"])
                row["record"] = record_bytes(rec).decode()
    progress.step(5)
    ms._publish(env, m, channel, plan, progress)
    return {"digest": hashlib.sha256(orjson.dumps([m.source_root, m.mode, filters], option=orjson.OPT_SORT_KEYS))
            .hexdigest()[:24], "validators": {}}


def _select(files: list[ps.UpstreamFile], filters: dict[str, Any], progress: Progress) -> list[ps.UpstreamFile]:
    only = ps.parse_requirements(filters.get("only_specs") or [])
    exclude = ps.parse_requirements(filters.get("exclude_specs") or [])
    include = ps.parse_requirements(filters.get("include_specs") or [])
    date_from, date_to = filters.get("date_from"), filters.get("date_to")
    counts = {"only_specs": 0, "exclude_specs": 0, "date": 0}
    kept = []
    for f in files:
        if only and not any(ps.matches(r, f) for r in only):
            counts["only_specs"] += 1
            continue
        if exclude and any(ps.matches(r, f) for r in exclude) and not any(ps.matches(r, f) for r in include):
            counts["exclude_specs"] += 1
            continue
        if date_from and f.upload_time and not (date_from <= f.upload_time[:10] <= date_to):
            counts["date"] += 1
            continue
        kept.append(f)
    with progress._lock:
        mf = progress.state["count"].setdefault("mirror_filtered", {})
        for k, v in counts.items():
            mf[k] = mf.get(k, 0) + v
        progress.state.update(upstream_records=len(files), selected=len(kept))
    return kept


def _plan(env: MirrorEnv, m: Mirror, channel: Channel, kept: list[ps.UpstreamFile]) -> ms.Plan:
    with env.sessions() as db:
        rows = db.execute(select(File.id, File.ckey, File.mirror_id, File.record, File.state, File.sha256)
                          .where(File.channel_id == channel.id, File.subdir == PARTITION)).all()
    mine = {r.ckey: r for r in rows if r.mirror_id == m.id}
    others = {r.ckey for r in rows if r.mirror_id != m.id}
    plan = ms.Plan([], [], [], [])
    now = utcnow()
    for f in kept:
        ckey = f"{PARTITION}/{f.project}/{f.filename}"
        if ckey in others:  # uploaded, or another mirror's: never overwritten by this one
            plan.conflicts.append(ckey)
            continue
        rec: dict[str, Any] = {"name": f.project, "version": f.version, "filename": f.filename,
                               "packagetype": "bdist_wheel" if f.filename.endswith(".whl") else "sdist",
                               "sha256": f.sha256 or "", "size": f.size or 0,
                               "requires_python": f.requires_python or None, "upload_time": f.upload_time}
        if f.yanked is not None:
            rec["yanked"] = f.yanked
        old = mine.pop(ckey, None)
        if old is not None and not rec["sha256"]:
            rec["sha256"] = old.sha256
        if old is not None and not rec["size"]:
            rec["size"] = orjson.loads(old.record).get("size", 0)
        text = record_bytes(rec).decode()
        same_bytes = old is not None and old.sha256 == (rec["sha256"] or old.sha256)
        state = old.state if same_bytes else "passive"
        row = {"id": old.id if old else ms._new_id(), "channel_id": channel.id, "family": "python",
               "name": f.project, "version": f.version, "subdir": PARTITION, "filename": f.filename, "ckey": ckey,
               "sha256": rec["sha256"], "md5": "", "size": int(rec["size"] or 0), "record": text,
               "meta": {"name": f.project, "version": f.version, "requires_python": f.requires_python},
               "state": state, "mirror_id": m.id, "updated_at": now,
               "source_url": redact_url(f.url)}  # without credentials: the run puts them back
        needs_fetch = (m.mode == "active" or not row["sha256"]) and state != "active"
        if needs_fetch:
            plan.fetch.append(row)
        if old is None:
            row["created_at"] = now
            plan.add.append(row)
        elif old.record != text or not same_bytes or needs_fetch:
            plan.update.append(row)
    plan.remove = [(r.id, PARTITION, r.ckey.rsplit("/", 1)[-1]) for r in mine.values()]
    return plan
