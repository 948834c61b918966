"""One run of a conda mirror: fetch the upstream index, select, download (active), publish.

Nothing the clients see changes until the very end: the new file rows, the removed ones and their
IndexChange rows are written in ONE transaction, so a run that fails, is stopped or is killed leaves
the channel serving its last good index. Files downloaded before an interruption stay in the blob
store (and partial downloads on disk), so the next run only fetches what is still missing.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from taipan.db.mirrors import Mirror
from taipan.db.models import Channel, File, IndexChange, utcnow
from taipan.domain import filters as flt
from taipan.domain.conda import parse_conda_filename
from taipan.domain.conda_record import record_problem
from taipan.domain.repodata import record_bytes
from taipan.domain.stream_filters import StreamSelector
from taipan.domain.urls import redact_url, scrub, secrets_of
from taipan.errors import TaipanError, UpstreamError
from taipan.services import cve_enforcement, cve_matching, indexing
from taipan.services.indexing import lock_channel
from taipan.services.mirror_runs import (
    JOB_SYNC,
    STEPS,
    MirrorEnv,
    Progress,
    Stopped,
    claim,
    error_category,
    initial_sync_state,
)
from taipan.upstreams.conda import CondaUpstream, RepodataFetch, partial_path, remove_quietly, shards_digest

log = logging.getLogger(__name__)
# What the artifact listings and channeldata.json read from File.meta["index.json"].
_META_KEYS = ("name", "version", "build", "build_number", "license", "license_family", "timestamp",
              "subdir", "noarch", "depends")


@dataclass
class Plan:
    add: list[dict[str, Any]]
    update: list[dict[str, Any]]
    remove: list[tuple[str, str, str]]  # (file id, subdir, filename)
    fetch: list[dict[str, Any]]  # rows to make active: download first (they are in add or update too)
    # A big conda upstream: the rows that need no download, on disk, read back in batches by the publish.
    spooled_add: _RowSpool | None = None
    # Selected files whose ckey another source (an upload, another mirror) already holds.
    conflicts: list[str] = field(default_factory=list)
    spooled_update: _RowSpool | None = None

    def close(self) -> None:
        for spool in (self.spooled_add, self.spooled_update):
            if spool is not None:
                spool.close()


def run_mirror(env: MirrorEnv, mirror_id: str) -> str | None:
    """Run the mirror if it is ours to run; return its final state (None if someone else runs it)."""
    with env.sessions() as db:
        run_id = claim(db, mirror_id, env.owner)
        if run_id is None:
            return None
        m = db.get(Mirror, mirror_id)
        assert m is not None
        channel = db.get(Channel, m.channel_id)
        assert channel is not None
        db.expunge_all()
    state = dict(m.sync_state)
    final, error, category, seen = "failed", None, None, None
    secrets: list[str] = []
    run, steps = _runner(m.mirror_type)
    with Progress(env, mirror_id, run_id, state, steps) as progress:
        try:
            source, proxy = _real_urls(env, m)
            secrets = secrets_of(source) + secrets_of(proxy)
            seen = run(env, m, channel, progress, source, proxy)
            final = "completed"
        except Stopped as exc:
            final, error, category = "stopped", str(exc), error_category(exc)
        except TaipanError as exc:
            error = f"{exc.message}" + (f" ({exc.hint})" if exc.hint else "")
            category = error_category(exc)
        except Exception as exc:  # report, never crash the worker
            log.error("mirror %s failed: %s", m.name, scrub(f"{type(exc).__name__}: {exc}", secrets))
            error, category = f"{type(exc).__name__}: {exc}", "internal error"
    if progress.lost:
        return None
    snap = progress.snapshot()
    if final != "stopped":
        snap.pop("stopping", None)  # the stop came after the run's last check: it ended all the same
    failed_files = int((snap.get("count") or {}).get("failed") or 0)
    if error is None and failed_files:
        # The run published what it could; say why the rest is missing instead of a blank error.
        error = (f"{failed_files} file(s) could not be fetched and were left out; last error: "
                 f"{snap.get('last_exception') or 'unknown'} (the next run tries them again)")
        category = f"{failed_files} file(s) could not be fetched ({snap.get('last_error_category') or 'error'})"
    # Credentials never reach the mirror's JSON, whoever reads it.
    snap.update(last_exception=scrub(error, secrets), last_error_category=category,
                finished_at=utcnow().isoformat())
    if final == "completed":
        snap.update(current_step_number=len(progress.steps), current_step_percentage=100,
                    current_step_description="Completed")
    with env.sessions() as db:
        row = db.get(Mirror, mirror_id)
        cache = dict(row.cache or {}) if row is not None else {}
        # An update with run_now arrived while we ran: run again with the new settings.
        rerun = bool(cache.pop("rerun", False)) and final != "stopped"
        if env.shutdown.is_set() and final == "stopped":
            rerun = True  # interrupted by a shutdown, not by a person: the next start resumes it
        if final == "completed" and seen is not None:
            cache["upstream"] = {**seen, "clean": snap["count"]["failed"] == 0, "count": snap["count"]}
        else:
            cache.pop("upstream", None)  # the next run fetches and compares everything
        values: dict[str, Any] = dict(state=final, sync_state=snap, heartbeat_at=utcnow(), run_id=None,
                                      stop_requested=False, updated_at=utcnow(), cache=cache)
        if rerun:
            values["state"] = "pending"
            values["sync_state"] = {**initial_sync_state(), "queued_at": utcnow().isoformat(),
                                    "previous": {"state": final, "last_exception": error}}
        db.execute(update(Mirror).where(Mirror.id == mirror_id, Mirror.run_id == run_id).values(**values))
        db.commit()
    if rerun and env.enqueue is not None and not env.shutdown.is_set():
        env.enqueue(JOB_SYNC, {"mirror_id": mirror_id})
    log.info("mirror %s: %s%s", m.name, final, f" ({error})" if error else "")
    return final


def _real_urls(env: MirrorEnv, m: Mirror) -> tuple[str, str | None]:
    """The source and proxy URLs with their credentials, decrypted for this run only."""
    box = env.secrets
    if (m.source_secret or m.proxy_secret) and box is None:
        raise UpstreamError("The mirror's credentials cannot be read (no secrets key)",
                            "Set TAIPAN_SECRETS__KEY as on the server", code="secret_unreadable")
    source = box.open(m.source_secret) if m.source_secret and box else m.source_root
    proxy = box.open(m.proxy_secret) if m.proxy_secret and box else m.proxy
    return source, proxy


# Mirror type -> the module whose ``sync(env, mirror, channel, progress, source, proxy)`` runs it and
# whose ``STEPS`` name its five steps (conda's are ``_sync`` below and ``mirror_runs.STEPS``). Imported on
# use: those modules build on this one.
SYNCERS = {"python_simple": "taipan.services.mirror_sync_python", "CRAN": "taipan.services.mirror_sync_cran"}


def _runner(mirror_type: str) -> tuple[Any, tuple[str, ...]]:
    """The run of one mirror type and the names of its steps."""
    module = SYNCERS.get(mirror_type)
    if module is None:
        return _sync, STEPS
    found = importlib.import_module(module)
    return found.sync, found.STEPS


def _sync(env: MirrorEnv, m: Mirror, channel: Channel, progress: Progress, source: str,
          proxy: str | None) -> dict[str, Any]:
    """Run the steps; return what to remember of the upstream (its validators) for the next run."""
    ch_filters = _channel_filters(channel)
    compiled = flt.compile_filters(m.filters or {}, ch_filters)
    with env.upstream_factory(source, proxy=proxy) as upstream:
        progress.step(1)
        if not compiled.subdirs:
            subdirs = upstream.subdirs()
            progress.contacted()
        else:
            subdirs = compiled.subdirs
        progress.step(2)
        digest = _digest(m, ch_filters, subdirs)
        prev = (m.cache or {}).get("upstream") or {}
        # Same settings, last run clean, and the channel still holds what that run published (no
        # file removed by hand since): ask conditionally, and stop early if nothing changed upstream.
        same = prev.get("digest") == digest and prev.get("clean") and _files_intact(env, m, prev)
        known = prev.get("validators", {}) if same else {}
        fetched: dict[str, RepodataFetch] = {}
        spool = env.blobs.tempdir()
        try:
            shards = _fetch_shards(upstream, compiled, subdirs, spool, progress,
                                   prev.get("shards") if same else None)
            if shards is not None and shards.unchanged:
                _unchanged(progress, prev)
                return {"digest": digest, "validators": {}, "shards": shards.state}
            fetched.update(shards.fetched if shards is not None else {})
            for i, subdir in enumerate(() if fetched else subdirs):
                v = known.get(subdir) or {}
                fetched[subdir] = upstream.fetch_repodata(subdir, etag=v.get("etag"), spool_dir=spool,
                                                          last_modified=v.get("last_modified"))
                progress.contacted()
                progress.percent(100 * (i + 1) / len(subdirs))
                progress.check()
            validators = {sd: {"etag": f.etag, "last_modified": f.last_modified}
                          for sd, f in fetched.items() if not f.missing}
            seen: dict[str, Any] = {"digest": digest, "validators": validators}
            if shards is not None and shards.state is not None:
                seen["shards"] = shards.state
            if known and any(f.not_modified for f in fetched.values()) and all(
                    f.not_modified or f.missing for f in fetched.values()):
                _unchanged(progress, prev)
                return seen
            for subdir, got in list(fetched.items()):
                if got.not_modified:  # others changed: this one is needed in full after all
                    fetched[subdir] = upstream.fetch_repodata(subdir, spool_dir=spool)
            present = {sd: got for sd, got in fetched.items() if not got.missing and got.path is not None}
            if not present:
                raise UpstreamError(f"The upstream has none of the subdirs {', '.join(subdirs)}",
                                    "Check --subdirs against the upstream channel",
                                    code="upstream_no_subdirs")
            progress.step(3)
            plan = _select_and_plan(env, m, channel, compiled, present, upstream, progress)
        finally:
            for got in fetched.values():
                got.discard()
        try:
            progress.step(4)
            _fetch_active(env, upstream, plan, progress)
            progress.step(5)
            _publish(env, m, channel, plan, progress)
        finally:
            plan.close()
    with env.sessions() as db:  # the mirrored files get their CVE scores, as uploads do
        cve_matching.match_files(db, File.mirror_id == m.id)
        db.commit()
    return seen


# At most this many names of a shard fetch are remembered to tell the next run whether their shards
# changed (a bigger closure is fetched again each run).
SHARD_NAMES_REMEMBERED = 20_000


@dataclass
class _Shards:
    fetched: dict[str, RepodataFetch]  # empty when unchanged
    state: dict[str, Any] | None  # what the next run compares: the names looked up, their shards' digest
    unchanged: bool = False


def _unchanged(progress: Progress, prev: Mapping[str, Any]) -> None:
    """Nothing changed upstream since the last (clean) run with the same settings: end early."""
    with progress._lock:
        progress.state["count"] = prev.get("count", progress.state["count"])
        progress.state["upstream_unchanged"] = True


def _fetch_shards(upstream: CondaUpstream, compiled: flt.CompiledFilters, subdirs: list[str], spool: Path,
                  progress: Progress, known: Mapping[str, Any] | None) -> _Shards | None:
    """When the filters name packages exactly and the upstream offers CEP-16 shards, only the shards
    of those names (and of their dependencies' names, with include_dependencies): a few requests
    instead of the whole repodata.json. None when that does not apply.

    ``known`` is what the last clean run with the same settings remembered: when the shard indexes
    give the names it looked up the same digests, nothing it would read changed, and no shard is
    fetched (``unchanged``)."""
    names = compiled.exact_names
    indexes = upstream.shard_indexes(subdirs) if names else None
    with progress._lock:
        progress.state["index_source"] = "shards" if indexes else "repodata"
    if not indexes:
        return None
    progress.contacted()
    if known and isinstance(known.get("names"), list) and \
            known.get("digest") == shards_digest(indexes, known["names"]):
        return _Shards({}, dict(known), unchanged=True)
    specs: dict[str, str | None] = {}

    def depends_on(dep: str) -> str | None:
        if dep not in specs:
            spec = flt.dep_spec(dep)
            specs[dep] = spec.name if spec is not None else None
        return specs[dep]

    got = upstream.fetch_shards(indexes, names, spool_dir=spool, check=progress.check,
                                depends_on=depends_on if compiled.include_dependencies else None)
    looked_up = sorted(got.names)
    state = {"names": looked_up, "digest": shards_digest(indexes, looked_up)} \
        if len(looked_up) <= SHARD_NAMES_REMEMBERED else None
    return _Shards(got.fetched, state)


def _select_and_plan(env: MirrorEnv, m: Mirror, channel: Channel, compiled: flt.CompiledFilters,
                     present: Mapping[str, RepodataFetch], upstream: CondaUpstream,
                     progress: Progress) -> Plan:
    """Filter the upstream records and plan the changes, streaming in every filter mode: one record
    in memory at a time (what the channel holds already is kept as compact digests, the candidates of
    a dependency closure are spooled to disk), planned rows spooled to disk."""
    started = time.perf_counter()
    cve_of = cve_enforcement.Assessor(env.sessions, "conda") if compiled.uses_cves else None
    plan = _Planner(env, m, channel, upstream, {sd: _base_url(got.info()) for sd, got in present.items()})
    invalid: list[tuple[str, str]] = []
    try:
        with _closure_spool(env, compiled) as spool:
            # A stop asked while the dependency closure runs (minutes over a big upstream) ends it.
            selector = StreamSelector(compiled, cve_of, spool, check=progress.check)
            for subdir, got in present.items():
                if not selector.wants(subdir):
                    continue
                for fn, rec in _primed(_valid_records(got, invalid), cve_of):
                    if selector.keep(subdir, fn, rec):
                        plan.record(subdir, fn, rec)
                progress.check()
            if compiled.closes_dependencies:
                with progress._lock:
                    progress.state["dependency_closure"] = {"candidates": selector.pooled, "done": False}
            for subdir, fn, rec in selector.closure():
                plan.record(subdir, fn, rec)
            if compiled.closes_dependencies:
                with progress._lock:
                    progress.state["dependency_closure"]["done"] = True
        result = plan.finish()
        _report_invalid(progress, invalid)
        _report_conflicts(progress, result.conflicts)
    except BaseException:
        plan.close()
        raise
    elapsed = time.perf_counter() - started
    with progress._lock:
        progress.state["count"].update(selector.counts)
        progress.state.update(upstream_records=selector.evaluated, selected=selector.kept_count,
                              filter_seconds=round(elapsed, 4), index_parse="stream",
                              filter_rate=round(selector.evaluated / elapsed) if elapsed > 0 else None)
    return result


def _closure_spool(env: MirrorEnv, compiled: flt.CompiledFilters) -> AbstractContextManager[BinaryIO | None]:
    """A scratch file for the candidates of a dependency closure (removed when closed), if needed."""
    if not compiled.closes_dependencies:
        return nullcontext()
    return tempfile.TemporaryFile(prefix="mirror-closure-", dir=env.blobs.tempdir())


# Records read ahead so that the CVE assessor loads the affects of their names in one query.
CVE_BATCH = 2000


def _primed(records: Iterator[tuple[str, dict[str, Any]]],
            cve_of: cve_enforcement.Assessor | None) -> Iterator[tuple[str, dict[str, Any]]]:
    if cve_of is None:
        yield from records
        return
    batch: list[tuple[str, dict[str, Any]]] = []
    for item in records:
        batch.append(item)
        if len(batch) >= CVE_BATCH:
            cve_of.prime(str(rec.get("name", "")) for _, rec in batch)
            yield from batch
            batch = []
    cve_of.prime(str(rec.get("name", "")) for _, rec in batch)
    yield from batch


def _base_url(info: Mapping[str, Any]) -> str | None:
    base_url = info.get("base_url")
    return base_url if isinstance(base_url, str) and base_url else None


def _valid_records(got: RepodataFetch, invalid: list[tuple[str, str]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """A subdir's records, ``packages.conda`` first. Records left out go to ``invalid`` with the
    reason: a file name that is not a conda package's, or a record against the repodata schema
    (one such record would make the published repodata.json unreadable for every client)."""
    bad = len(invalid)
    for section in ("packages.conda", "packages"):
        for fn, rec in got.records(section):
            problem = _filename_problem(fn, section) or record_problem(rec)
            if problem is None:
                yield fn, rec
            else:
                invalid.append((f"{got.subdir}/{fn}", problem))
    if len(invalid) > bad:
        log.warning("skipped %d invalid upstream record(s) in %s, e.g. %s: %s", len(invalid) - bad,
                    redact_url(got.url), *invalid[bad])


def _filename_problem(fn: str, section: str) -> str | None:
    want = ".conda" if section == "packages.conda" else ".tar.bz2"
    try:
        parse_conda_filename(fn)
    except TaipanError:
        return "not a conda package file name"
    if not fn.endswith(want):
        return f"a {section!r} entry must end in {want}"
    return None


CONFLICTS_SHOWN = 20


def _report_conflicts(progress: Progress, conflicts: list[str]) -> None:
    """Selected files that the channel already holds from another source are left out: say how
    many and which, instead of a run that "completes" with nothing stored."""
    with progress._lock:
        progress.state["count"]["conflicts"] = len(conflicts)
        progress.state["conflicts"] = sorted(conflicts)[:CONFLICTS_SHOWN]


def _report_invalid(progress: Progress, invalid: list[tuple[str, str]]) -> None:
    """Upstream records that no conda client could read are skipped, never published: say how many
    and why, without failing the run."""
    with progress._lock:
        progress.state["count"]["invalid"] = len(invalid)
        progress.state["invalid_records"] = [f"{ckey}: {why}" for ckey, why in sorted(invalid)[:CONFLICTS_SHOWN]]


def _files_intact(env: MirrorEnv, m: Mirror, prev: Mapping[str, Any]) -> bool:
    count = prev.get("count") or {}
    if "active" not in count or "passive" not in count:
        return False
    with env.sessions() as db:
        have = db.scalar(select(func.count()).select_from(File).where(File.mirror_id == m.id)) or 0
    return int(have) == int(count["active"]) + int(count["passive"])


def _digest(m: Mirror, channel_filters: dict[str, Any], subdirs: list[str]) -> str:
    """What the selection depends on besides the upstream's bytes."""
    key = [m.source_root, m.mode, m.filters or {}, channel_filters, sorted(subdirs)]
    return hashlib.sha256(orjson.dumps(key, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]


def _channel_filters(channel: Channel) -> dict[str, Any]:
    # Only the mirror-relevant keys: a channel's filters object may carry other settings too.
    raw = channel.filters or {}
    return {k: raw[k] for k in (*flt.CHANNEL_FILTER_KEYS, "licenses") if k in raw}


class _Planner:
    """Builds the Plan one kept record at a time.

    What the channel holds already is read once, as compact bytes per file (id, state, sha256 and a
    digest of the record text), so a re-sync of 1.5M records does not hold 1.5M record texts. Rows to
    add or update are spooled to files in the blob store's temp dir and read back in batches by the
    publish; only rows that need a download (active mode) stay in memory.
    """

    def __init__(self, env: MirrorEnv, m: Mirror, channel: Channel, upstream: CondaUpstream,
                 base_urls: Mapping[str, str | None]) -> None:
        self.m, self.channel, self.upstream, self.base_urls = m, channel, upstream, base_urls
        self.mine: dict[str, bytes] = {}
        self.others: set[str] = set()
        with env.sessions() as db:
            rows = db.execute(select(File.ckey, File.mirror_id, File.id, File.state, File.sha256, File.record)
                              .where(File.channel_id == channel.id).execution_options(yield_per=5000))
            for r in rows:
                if r.mirror_id == m.id:
                    self.mine[r.ckey] = _digest_record((r.record or "").encode()) + \
                        f"{r.state}\0{r.sha256}\0{r.id}".encode()
                else:
                    self.others.add(r.ckey)
        self.plan = Plan([], [], [], [], spooled_add=_RowSpool(env.blobs.tempdir()),
                         spooled_update=_RowSpool(env.blobs.tempdir()))

    def record(self, subdir: str, fn: str, rec: Mapping[str, Any]) -> None:
        ckey = f"{subdir}/{fn}"
        if ckey in self.others:  # uploaded, or another mirror's: never overwritten by this one
            self.plan.conflicts.append(ckey)
            return
        raw = record_bytes(rec)
        packed = self.mine.pop(ckey, None)
        if packed is not None:
            old_state, old_sha, old_id = packed[16:].decode().split("\0")
        sha = rec.get("sha256") or (old_sha if packed is not None else "")
        same_bytes = packed is not None and old_sha == sha
        state = old_state if same_bytes else "passive"
        row = {"id": old_id if packed is not None else _new_id(), "family": "conda",
               "name": str(rec.get("name", "")), "version": str(rec.get("version", "")),
               "subdir": subdir, "filename": fn, "ckey": ckey, "sha256": sha,
               "md5": rec.get("md5") or "", "size": int(rec.get("size") or 0), "record": raw.decode(),
               "meta": {"index.json": {k: rec[k] for k in _META_KEYS if k in rec}},
               "state": state, "mirror_id": self.m.id,
               # stored without credentials: the run (or a passive fetch) puts them back
               "source_url": redact_url(self.upstream.file_url(subdir, fn, self.base_urls.get(subdir)))}
        needs_fetch = (self.m.mode == "active" or not row["sha256"]) and state != "active"
        if packed is None:
            kind = "add"
        elif packed[:16] != _digest_record(raw) or not same_bytes or needs_fetch:
            kind = "update"
        else:
            return
        if needs_fetch:  # downloads change the row: it stays in memory
            self.plan.fetch.append(row)
            (self.plan.add if kind == "add" else self.plan.update).append(row)
        else:
            spool = self.plan.spooled_add if kind == "add" else self.plan.spooled_update
            assert spool is not None
            spool.write(row)

    def finish(self) -> Plan:
        self.plan.remove = [(packed[16:].decode().rsplit("\0", 1)[1], *ckey.split("/", 1))
                            for ckey, packed in self.mine.items()]
        self.mine.clear()
        for spool in (self.plan.spooled_add, self.plan.spooled_update):
            if spool is not None:
                spool.finish()
        return self.plan

    def close(self) -> None:
        self.plan.close()


def _digest_record(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=16).digest()


class _RowSpool:
    """Planned rows on disk (one JSON line each), read back in batches."""

    def __init__(self, tmpdir: Any) -> None:
        fd, name = tempfile.mkstemp(prefix="mirror-plan-", suffix=".jsonl", dir=tmpdir)
        self.path = Path(name)
        self._out: BinaryIO | None = os.fdopen(fd, "wb")
        self.count = 0

    def write(self, row: dict[str, Any]) -> None:
        assert self._out is not None
        self._out.write(orjson.dumps(row) + b"\n")
        self.count += 1

    def finish(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def batches(self, size: int) -> Iterator[list[dict[str, Any]]]:
        batch: list[dict[str, Any]] = []
        with open(self.path, "rb") as fh:
            for line in fh:
                batch.append(orjson.loads(line))
                if len(batch) >= size:
                    yield batch
                    batch = []
        if batch:
            yield batch

    def close(self) -> None:
        self.finish()
        self.path.unlink(missing_ok=True)


def _fetch_active(env: MirrorEnv, upstream: CondaUpstream, plan: Plan, progress: Progress) -> None:
    """Download what must be active; a file that fails is left out of this publication."""
    if not plan.fetch:
        return
    total, done = len(plan.fetch), 0
    failed: set[str] = set()
    lock = threading.Lock()

    def one(row: dict[str, Any]) -> None:
        nonlocal done
        progress.check()
        try:
            _download(env, upstream, row)
        except UpstreamError as exc:
            with lock:
                failed.add(row["id"])
                progress.state["last_exception"] = exc.message
                progress.state["last_error_category"] = error_category(exc)
            progress.count("failed")
        with lock:
            done += 1
            progress.percent(100 * done / total, row["ckey"])

    with ThreadPoolExecutor(env.download_threads, thread_name_prefix="mirror-dl") as pool:
        futures = [pool.submit(one, row) for row in plan.fetch]
        try:
            for fut in futures:
                fut.result()
        except Stopped:
            for fut in futures:
                fut.cancel()
            raise
    if failed:
        plan.add = [r for r in plan.add if r["id"] not in failed]
        # An existing row whose new bytes failed keeps its previous, good version.
        plan.update = [r for r in plan.update if r["id"] not in failed]


def _download(env: MirrorEnv, upstream: CondaUpstream, row: dict[str, Any]) -> None:
    sha = row["sha256"] or None
    if sha and env.blobs.touch(sha):  # touched: a blob cleanup leaves it until the sync commits
        row["state"] = "active"
        return
    dest = partial_path(env.blobs.tempdir(), sha, row["ckey"])
    got = upstream.download(upstream.unmask(row["source_url"]), dest, sha256=sha, size=row["size"] or None,
                            md5=row["md5"] or None)
    env.blobs.put_file(got.sha256, dest, move=True)
    remove_quietly(dest)
    row.update(state="active", sha256=got.sha256, md5=row["md5"] or got.md5, size=got.size)


def _publish(env: MirrorEnv, m: Mirror, channel: Channel, plan: Plan, progress: Progress) -> None:
    """One transaction; the planned rows are read back from their spools in batches."""
    progress.check()
    n_changes = len(plan.add) + len(plan.update) + len(plan.remove) + sum(
        s.count for s in (plan.spooled_add, plan.spooled_update) if s is not None)
    subdirs: set[str] = set()
    now = utcnow()

    def batches(spool: _RowSpool | None, rows: list[dict[str, Any]],
                size: int) -> Iterator[list[dict[str, Any]]]:
        if spool is not None:
            yield from spool.batches(size)
        yield from _chunks(rows, size)

    with env.sessions() as db:
        frozen = False
        if n_changes:
            # Writers of one channel commit in the order of their change log (see log_changes).
            frozen = lock_channel(db, channel.id)
        # Core inserts: the ORM's per-object bookkeeping costs seconds at 100,000 rows.
        for chunk in batches(plan.spooled_add, plan.add, 5000):
            db.execute(insert(File.__table__), [{"channel_id": channel.id, "created_at": now,
                                                 "updated_at": now, **r} for r in chunk])
            _log_changes(db, channel.id, [(r["subdir"], r["filename"]) for r in chunk], now, hold=frozen)
            subdirs.update(r["subdir"] for r in chunk)
            progress.check()
        for chunk in batches(plan.spooled_update, plan.update, 2000):
            # A frozen channel keeps serving the files it had: their new values wait until unfreeze.
            rewrite = indexing.defer(db, channel.id, chunk) if frozen else chunk
            if rewrite:
                db.execute(update(File), [{"updated_at": now, **{k: v for k, v in r.items() if k != "channel_id"}}
                                          for r in rewrite])
            _log_changes(db, channel.id, [(r["subdir"], r["filename"]) for r in rewrite], now, hold=frozen)
            subdirs.update(r["subdir"] for r in chunk)
            progress.check()
        for removed in _chunks(plan.remove, 500):
            db.execute(delete(File).where(File.id.in_([r[0] for r in removed])))
            _log_changes(db, channel.id, [(sd, fn) for _, sd, fn in removed], now)  # a frozen index too
            if frozen:  # nothing of theirs waits for the unfreeze any more
                indexing.forget_held(db, channel.id, [(sd, fn) for _, sd, fn in removed])
            subdirs.update(sd for _, sd, _ in removed)
        counts = dict(db.execute(select(File.state, func.count()).where(File.mirror_id == m.id)
                                 .group_by(File.state)).all())
        with progress._lock:
            progress.state["count"].update(active=counts.get("active", 0), passive=counts.get("passive", 0),
                                           removed=len(plan.remove))
        db.commit()
    env.notify(channel.id, subdirs)


def _log_changes(db: Session, channel_id: str, changes: list[tuple[str, str]], now: Any, *,
                 hold: bool = False) -> None:
    """``indexing.log_changes`` for big batches: Core inserts (the channel row is locked already).
    ``hold``: the channel is frozen and these are new or changed files (``indexing.hold``)."""
    if hold:
        indexing.hold(db, channel_id, changes)
        return
    rows = [{"channel_id": channel_id, "subdir": sd, "filename": fn, "created": now} for sd, fn in changes]
    for chunk in _chunks(rows, 5000):
        db.execute(insert(IndexChange.__table__), chunk)
    indexing.ring_after_commit(db, channel_id)


def _new_id() -> str:
    """A random (version 4) UUID string, without uuid.UUID's overhead (it shows at 100,000 rows)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
