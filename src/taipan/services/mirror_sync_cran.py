"""One run of a CRAN mirror: read the upstream's ``src/contrib/PACKAGES.gz`` (``PACKAGES`` when there
is no ``.gz``), select source packages (R requirements, license families, Date/Publication window,
the dependency closure over Depends/Imports/LinkingTo), optionally their older versions from
``src/contrib/Archive/<pkg>/``, download them (active) and publish them into the channel's
``src/contrib`` partition in one transaction (``mirror_sync._publish``), like a conda mirror. Passive
files are fetched on first request by the shared passive-fetch path, verified against the upstream's
SHA256 when it gives one, else its MD5sum."""

from __future__ import annotations

import gzip
import hashlib
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson

from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File
from taipan.domain import cran
from taipan.domain import cran_upstream as cu
from taipan.domain import filters as flt
from taipan.domain.repodata import record_bytes
from taipan.domain.urls import redact_url
from taipan.errors import InvalidInput, UpstreamError
from taipan.services import cve_enforcement, cve_matching
from taipan.services import mirror_sync as ms
from taipan.services.mirror_plan import Planned, plan_files
from taipan.services.mirror_runs import MirrorEnv, Progress

PARTITION = cran.SOURCE_PARTITION
STEPS = ("Fetching the upstream's PACKAGES", "Reading PACKAGES", "Filtering packages", "Fetching files",
         "Publishing the index")


def repo_root(source_root: str) -> str:
    """The repository root, also when given as ``.../src/contrib``."""
    root = source_root.rstrip("/")
    if root.endswith("/" + PARTITION):
        root = root[: -len(PARTITION) - 1]
    return root + "/"


def sync(env: MirrorEnv, m: Mirror, channel: Channel, progress: Progress, source: str,
         proxy: str | None) -> dict[str, Any]:
    """``source`` and ``proxy`` are the real URLs (credentials included), ``m.source_root`` the masked form."""
    filters = m.filters or {}
    ch_filters = flt.normalize_channel_filters(ms._channel_filters(channel))
    root = repo_root(source)  # the real URL: credentials included
    partitions = list(filters.get("subdirs") or [PARTITION])
    digest = hashlib.sha256(orjson.dumps([m.source_root, m.mode, filters, ch_filters],
                                         option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
    prev = (m.cache or {}).get("upstream") or {}
    # Same settings, last run clean, the channel still holds what it published: ask conditionally.
    known = prev.get("validators", {}) if prev.get("digest") == digest and prev.get("clean") and \
        ms._files_intact(env, m, prev) else {}
    with env.upstream_factory(source, proxy=proxy) as upstream:
        progress.step(1)
        fetched = {part: _packages_file(upstream, root + part + "/", known.get(part) or {}) for part in partitions}
        progress.contacted()
        seen = {"digest": digest, "validators": {part: v for part, (_, v) in fetched.items()}}
        if known and all(raw is None and v for raw, v in fetched.values()):  # all 304: nothing changed
            with progress._lock:
                progress.state["count"] = prev.get("count", progress.state["count"])
                progress.state["upstream_unchanged"] = True
            return seen
        kept: list[cu.UpstreamPackage] = []
        total = 0
        for part, (raw, v) in fetched.items():
            contrib = root + part + "/"
            if raw is None and v:  # 304 while another tree changed: needed in full after all
                raw, v = _packages_file(upstream, contrib, {})
                seen["validators"][part] = v
            if raw is None:
                continue  # the upstream has no such tree
            progress.step(2)
            try:
                packages = cu.parse_packages(raw, contrib, part)
            except InvalidInput as exc:
                raise UpstreamError(f"The upstream's {part}/PACKAGES is not a DCF file: {exc.message}",
                                    "Check that the source URL is the root of a CRAN-like repository",
                                    code="upstream_corrupt") from exc
            if filters.get("include_archive") and part == PARTITION:
                packages += _archived(env, upstream, contrib, packages, filters, progress)
            progress.step(3)
            total += len(packages)
            kept += _select(packages, filters, ch_filters, progress)
        if not any(raw is not None or v for raw, v in fetched.values()):
            raise UpstreamError(f"No {'/PACKAGES, '.join(partitions)}/PACKAGES under {upstream._describe(root)}",
                                "Give the root of a CRAN-like repository, e.g. https://cloud.r-project.org, "
                                "and trees it has with --subdirs", code="upstream_not_found")
        kept = cve_enforcement.mirror_keep(env.sessions, "cran", PARTITION, kept, lambda p: p.name,
                                           lambda p: p.version, filters, channel, progress)
        with progress._lock:
            progress.state.update(upstream_records=total, selected=len(kept))
        progress.step(4)
        plan = _plan(env, m, channel, kept)
        ms._report_conflicts(progress, plan.conflicts)
        ms._fetch_active(env, upstream, plan, progress)
        for row in plan.add + plan.update:  # hashes learnt by downloading go into the index too
            rec = orjson.loads(row["record"])
            if row["sha256"] and rec.get("SHA256") != row["sha256"]:
                rec.update(SHA256=row["sha256"], MD5sum=row["md5"] or rec.get("MD5sum"), size=row["size"])
                row["record"] = record_bytes(rec).decode()
    progress.step(5)
    ms._publish(env, m, channel, plan, progress)
    with env.sessions() as db:  # the mirrored files get their CVE scores, as uploads do
        cve_matching.match_files(db, File.mirror_id == m.id)
        db.commit()
    return seen


def _select(packages: list[cu.UpstreamPackage], filters: dict[str, Any], ch_filters: dict[str, Any],
            progress: Progress) -> list[cu.UpstreamPackage]:
    """One tree's selection (the dependency closure stays inside the tree), counted."""
    sel = cu.select(packages, filters, ch_filters)
    if filters.get("include_dependencies"):
        sel = cu.with_dependencies(sel, packages)
    with progress._lock:
        mf = progress.state["count"].setdefault("mirror_filtered", {})
        cf = progress.state["count"].setdefault("channel_filtered", {})
        for k, v in sel.counts.items():
            into, key = (cf, k[len("channel_"):]) if k.startswith("channel_") else (mf, k)
            into[key] = into.get(key, 0) + v
        if filters.get("include_dependencies"):
            missing = sorted(set(progress.state.get("dependencies_missing") or []) | set(sel.missing))
            progress.state.update(dependencies_added=int(progress.state.get("dependencies_added") or 0)
                                  + sel.dependencies_added, dependencies_missing=missing[:100])
    return sel.kept


def _conditional(known: dict[str, Any]) -> dict[str, str]:
    headers = {}
    if known.get("etag"):
        headers["If-None-Match"] = known["etag"]
    if known.get("last_modified"):
        headers["If-Modified-Since"] = known["last_modified"]
    return headers


def _packages_file(upstream: Any, contrib: str,
                   known: dict[str, Any]) -> tuple[bytes | None, dict[str, Any]]:
    """PACKAGES.gz decompressed (else PACKAGES) and its validators; (None, validators) when answered
    304, (None, {}) when the tree has neither."""
    for name in ("PACKAGES.gz", "PACKAGES"):
        v = known.get(name) or {}
        got = upstream.get_bytes(contrib + name, headers=_conditional(v))
        if got.status_code == 304:
            return None, {name: v}
        if got.status_code == 404:
            continue
        validators = {name: {"etag": got.headers.get("etag"), "last_modified": got.headers.get("last-modified")}}
        if name == "PACKAGES":
            return bytes(got.content), validators
        try:
            return gzip.decompress(got.content), validators
        except (OSError, EOFError, zlib.error):
            continue  # a server that already decoded it (Content-Encoding), or a broken file: try PACKAGES
    return None, {}


def _archived(env: MirrorEnv, upstream: Any, contrib: str, packages: list[cu.UpstreamPackage],
              filters: dict[str, Any], progress: Progress) -> list[cu.UpstreamPackage]:
    """Older versions, for the packages the name filters keep: from ``Meta/archive.rds`` when the
    upstream has one, else from the ``Archive/<pkg>/`` directory listings."""
    names = sorted({p.name for p in cu.select(packages, {k: filters[k] for k in (
        "only_specs", "exclude_specs", "include_specs") if k in filters}).kept})
    current = {(p.name, p.version) for p in packages}
    listed = _archive_rds(upstream, contrib)
    if listed is not None:  # one file lists them all (CRAN, Taipan): no directory listings needed
        return [p for n in names for p in listed.get(n, []) if (p.name, p.version) not in current]
    done = 0
    lock = threading.Lock()

    def one(name: str) -> list[cu.UpstreamPackage]:
        nonlocal done
        progress.check()
        url = f"{contrib}Archive/{name}/"
        got = upstream.get_bytes(url)
        found = [] if got.status_code == 404 else cu.parse_archive_listing(name, got.content, str(got.url))
        with lock:
            done += 1
            progress.percent(100 * done / max(len(names), 1))
        return [p for p in found if (p.name, p.version) not in current]

    with ThreadPoolExecutor(max(env.download_threads, 1), thread_name_prefix="mirror-archive") as pool:
        return [p for ps in pool.map(one, names) for p in ps]


def _archive_rds(upstream: Any, contrib: str) -> dict[str, list[cu.UpstreamPackage]] | None:
    got = upstream.get_bytes(contrib + "Meta/archive.rds")
    if got.status_code == 404:
        return None
    try:
        return cu.parse_archive_rds(got.content, contrib)
    except ValueError:
        return None  # not readable here: the directory listings say the same


def _plan(env: MirrorEnv, m: Mirror, channel: Channel, kept: list[cu.UpstreamPackage]) -> ms.Plan:
    return plan_files(env, m, channel, File.family == "cran", kept, lambda p: f"{p.partition}/{p.filename}",
                      _planned, fetch_unhashed=False)


def _planned(p: cu.UpstreamPackage, old: Any) -> Planned:
    rec = dict(p.record)
    same = old is not None and (not p.sha256 or p.sha256 == old.sha256) and (not p.md5 or p.md5 == old.md5)
    if same:  # what an earlier download learnt stays known
        prev = orjson.loads(old.record)
        for k in ("SHA256", "MD5sum", "size"):
            if prev.get(k) and not rec.get(k):
                rec[k] = prev[k]
    rec.setdefault("size", 0)
    sha = str(rec.get("SHA256") or (old.sha256 if same else ""))
    return Planned({"family": "cran", "name": p.name, "version": p.version, "subdir": p.partition,
                    "filename": p.filename, "sha256": sha, "md5": str(rec.get("MD5sum") or ""),
                    "size": int(rec.get("size") or 0), "record": record_bytes(rec).decode(),
                    "meta": {"DESCRIPTION": {k: v for k, v in rec.items() if k != "size"}},
                    "source_url": redact_url(p.url)}, same)
