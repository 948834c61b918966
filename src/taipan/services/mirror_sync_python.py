"""One run of a python_simple mirror: read the upstream simple index (PEP 691 JSON when offered,
PEP 503 HTML otherwise) for the chosen projects, select files, download them (active) and publish
them into the channel's ``simple`` partition in one transaction (``mirror_sync._publish``), like a
conda mirror. Passive files are fetched, verified against the upstream sha256 and stored on first
request by the same passive-fetch path as conda files. Yanked upstream files stay yanked."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from packaging.utils import canonicalize_name

from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File
from taipan.domain import filters as flt
from taipan.domain import python_simple as ps
from taipan.domain.families.python import PARTITION
from taipan.domain.repodata import record_bytes
from taipan.domain.urls import redact_url
from taipan.errors import UpstreamError
from taipan.services import cve_enforcement, cve_matching
from taipan.services import mirror_sync as ms
from taipan.services.mirror_plan import Planned, plan_files
from taipan.services.mirror_runs import MirrorEnv, Progress

STEPS = ("Listing upstream projects", "Fetching project pages", "Filtering files", "Fetching files",
         "Publishing the index")


def sync(env: MirrorEnv, m: Mirror, channel: Channel, progress: Progress, source: str,
         proxy: str | None) -> dict[str, Any]:
    """``source`` and ``proxy`` are the real URLs (credentials included); ``m.source_root`` is the
    masked form for messages."""
    filters = m.filters or {}
    root = source.rstrip("/") + "/"
    with env.upstream_factory(source, proxy=proxy) as upstream:
        progress.step(1)
        projects = [str(p) for p in filters.get("projects") or []]
        if not projects and filters.get("only_specs"):  # only these projects can match
            projects = [r.name for r in ps.parse_requirements(filters["only_specs"])]
        if projects:
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
        digest = hashlib.sha256(orjson.dumps([m.source_root, m.mode, filters, projects],
                                             option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
        prev = (m.cache or {}).get("upstream") or {}
        # Same settings, last run clean, the channel still holds what it published: ask every page
        # conditionally (dependencies included), and stop early if none changed upstream.
        same = prev.get("digest") == digest and prev.get("clean") and ms._files_intact(env, m, prev)
        known: dict[str, str] = prev.get("validators", {}) if same else {}
        etags: dict[str, str] = {}
        if known:
            checked = _fetch_pages(env, upstream, root, sorted(set(projects) | set(known)), progress, known, etags)
            if all(files is None for files in checked.values()):
                with progress._lock:
                    progress.state["count"] = prev.get("count", progress.state["count"])
                    progress.state["upstream_unchanged"] = True
                return {"digest": digest, "validators": known}
            etags.clear()
        pages = _fetch_pages(env, upstream, root, projects, progress, {}, etags)
        progress.step(3)
        files = [f for fs in pages.values() for f in fs or ()]
        kept = _select(files, filters, progress)
        kept = _cve_select(env, kept, filters, channel, progress)
        if filters.get("include_dependencies"):
            kept = _with_dependencies(env, upstream, root, pages, kept, filters, progress, etags)
        licenses = {k: v for k, v in flt.normalize_channel_filters(ms._channel_filters(channel)).items()
                    if k.endswith("_licenses")}  # the channel's CVE filters were applied above
        if any(filters.get(k) for k in ("include_licenses", "exclude_licenses")) or licenses:
            kept = _by_license(env, upstream, kept, filters, licenses, progress)
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
    with env.sessions() as db:  # the mirrored files get their CVE scores, as uploads do
        cve_matching.match_files(db, File.mirror_id == m.id)
        db.commit()
    return {"digest": digest, "validators": etags}


def _fetch_pages(env: MirrorEnv, upstream: Any, root: str, projects: list[str], progress: Progress,
                 known: dict[str, str], etags: dict[str, str]) -> dict[str, Any]:
    """Every project's files, fetched in parallel (a missing project has none; None: not modified
    since the ETag in ``known``); the pages' ETags are collected in ``etags``."""
    done = 0
    lock = threading.Lock()

    def one(project: str) -> list[ps.UpstreamFile] | None:
        nonlocal done
        progress.check()
        headers = {"Accept": ps.JSON_ACCEPT}
        if known.get(project):
            headers["If-None-Match"] = known[project]
        got = upstream.get_bytes(f"{root}{project}/", headers=headers)
        progress.contacted()
        files = None if got.status_code == 304 else [] if got.status_code == 404 else ps.parse_project(
            project, got.content, got.headers.get("content-type"), str(got.url))
        with lock:
            done += 1
            progress.percent(100 * done / max(len(projects), 1))
            etag = got.headers.get("etag")
            if etag and got.status_code in (200, 304):
                etags[project] = etag
        return files

    with ThreadPoolExecutor(max(env.download_threads, 1), thread_name_prefix="mirror-pages") as pool:
        return dict(zip(projects, pool.map(one, projects), strict=True))


def _with_dependencies(env: MirrorEnv, upstream: Any, root: str, pages: dict[str, Any],
                       kept: list[ps.UpstreamFile], filters: dict[str, Any], progress: Progress,
                       etags: dict[str, str]) -> list[ps.UpstreamFile]:
    """Add the closure over Requires-Dist, read from the upstream's PEP 658 metadata files (no
    distribution is downloaded), for the environments the mirror's tag filters keep."""
    py_tags, plat_tags = filters.get("python_tags") or [], filters.get("platform_tags") or []
    envs = ps.marker_environments(py_tags, plat_tags)
    chosen = {(f.project, f.filename): f for f in kept}
    done_versions: set[tuple[str, str]] = set()
    queue = list(kept)
    added = 0
    while queue:
        progress.check()
        by_version: dict[tuple[str, str], list[ps.UpstreamFile]] = {}
        for f in queue:
            if (f.project, f.version) not in done_versions:
                by_version.setdefault((f.project, f.version), []).append(f)
        queue = []
        for key, fs in by_version.items():
            done_versions.add(key)
            source = next((f for f in sorted(fs, key=lambda f: not f.filename.endswith(".whl"))
                           if f.has_metadata), None)
            if source is None:
                continue
            got = upstream.get_bytes(source.url + ".metadata")
            if got.status_code == 404:
                continue
            for req in ps.requirements_of(got.content, envs):
                dep = str(canonicalize_name(req.name))
                if dep not in pages:
                    pages.update(_fetch_pages(env, upstream, root, [dep], progress, {}, etags))
                for f in pages[dep] or ():
                    if (dep, f.filename) not in chosen and ps.matches(req, f) and ps.tags_ok(f, py_tags, plat_tags):
                        chosen[(dep, f.filename)] = f
                        queue.append(f)
                        added += 1
    with progress._lock:
        progress.state["dependencies_added"] = added
    return list(chosen.values())


def _cve_select(env: MirrorEnv, files: list[ps.UpstreamFile], filters: dict[str, Any], channel: Channel,
                progress: Progress) -> list[ps.UpstreamFile]:
    """The mirror's and the channel's CVE filters, by what the CVE store knows of each file's version."""
    return cve_enforcement.mirror_keep(env.sessions, "python", PARTITION, files, lambda f: f.project,
                                       lambda f: f.version, filters, channel, progress)


def _by_license(env: MirrorEnv, upstream: Any, kept: list[ps.UpstreamFile], filters: dict[str, Any],
                channel_filters: dict[str, Any], progress: Progress) -> list[ps.UpstreamFile]:
    """Keep what the mirror's and the channel's license families allow; a version's family is read
    from one of its files' PEP 658 metadata (none advertised: 'none')."""
    versions = sorted({(f.project, f.version) for f in kept})
    source = {}
    for f in sorted(kept, key=lambda f: not f.filename.endswith(".whl")):
        if f.has_metadata:
            source.setdefault((f.project, f.version), f)

    def family(key: tuple[str, str]) -> str:
        progress.check()
        f = source.get(key)
        if f is None:
            return "none"
        got = upstream.get_bytes(f.url + ".metadata")
        return ps.license_family(got.content if got.status_code == 200 else None)

    with ThreadPoolExecutor(max(env.download_threads, 1), thread_name_prefix="mirror-meta") as pool:
        families = dict(zip(versions, pool.map(family, versions), strict=True))
    rules = (("channel_filtered", channel_filters.get("include_licenses"), channel_filters.get("exclude_licenses")),
             ("mirror_filtered", filters.get("include_licenses"), filters.get("exclude_licenses")))
    out = []
    dropped = {"channel_filtered": 0, "mirror_filtered": 0}
    for f in kept:
        fam = families[(f.project, f.version)]
        level = next((lvl for lvl, inc, exc in rules if (inc and fam not in inc) or (exc and fam in exc)), None)
        if level is None:
            out.append(f)
        else:
            dropped[level] += 1
    with progress._lock:
        for level, n in dropped.items():
            counts = progress.state["count"].setdefault(level, {})
            counts["license"] = counts.get("license", 0) + n
    return out


def _select(files: list[ps.UpstreamFile], filters: dict[str, Any], progress: Progress) -> list[ps.UpstreamFile]:
    only = ps.parse_requirements(filters.get("only_specs") or [])
    exclude = ps.parse_requirements(filters.get("exclude_specs") or [])
    include = ps.parse_requirements(filters.get("include_specs") or [])
    date_from, date_to = filters.get("date_from"), filters.get("date_to")
    py_tags, plat_tags = filters.get("python_tags") or [], filters.get("platform_tags") or []
    counts = {"only_specs": 0, "exclude_specs": 0, "date": 0, "tags": 0}
    kept = []
    for f in files:
        if only and not any(ps.matches(r, f) for r in only):
            counts["only_specs"] += 1
            continue
        if exclude and any(ps.matches(r, f) for r in exclude) and not any(ps.matches(r, f) for r in include):
            counts["exclude_specs"] += 1
            continue
        if not ps.tags_ok(f, py_tags, plat_tags):
            counts["tags"] += 1
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
    return plan_files(env, m, channel, File.subdir == PARTITION, kept,
                      lambda f: f"{PARTITION}/{f.project}/{f.filename}", _planned, fetch_unhashed=True)


def _planned(f: ps.UpstreamFile, old: Any) -> Planned:
    rec: dict[str, Any] = {"name": f.project, "version": f.version, "filename": f.filename,
                           "packagetype": "bdist_wheel" if f.filename.endswith(".whl") else "sdist",
                           "sha256": f.sha256 or "", "size": f.size or 0,
                           "requires_python": f.requires_python or None, "upload_time": f.upload_time}
    if f.yanked is not None:
        rec["yanked"] = f.yanked
    if old is not None and not rec["sha256"]:
        rec["sha256"] = old.sha256
    if old is not None and not rec["size"]:
        rec["size"] = orjson.loads(old.record).get("size", 0)
    same_bytes = old is not None and old.sha256 == (rec["sha256"] or old.sha256)
    return Planned({"family": "python", "name": f.project, "version": f.version, "subdir": PARTITION,
                    "filename": f.filename, "sha256": rec["sha256"], "md5": "", "size": int(rec["size"] or 0),
                    "record": record_bytes(rec).decode(),
                    "meta": {"name": f.project, "version": f.version, "requires_python": f.requires_python},
                    "source_url": redact_url(f.url)},  # without credentials: the run puts them back
                   same_bytes)
