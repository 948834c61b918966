"""Channel filters applied to what enters a channel, and CVE filters kept true as CVE data changes.

- ``Assessor``, ``assessor``: the CVE score and status a file *would* have (for mirror selection,
  uploads, copies), loading the CVE store's affects by name, in batches, with a bounded cache.
- ``check_channel_filters``: refuse an upload or a copy that the channel's filters exclude (licenses,
  exclude specs, CVE score and uncurated CVEs).
- ``enforce``: after CVE data changed (import, sync, curation, mapping edits, rematches), files that now
  break their channel's CVE filters are withheld from the channel's index (not deleted) with a history
  event, and withheld files that no longer break them come back. A match looks at the files whose score
  or status it changed (by id, whatever the size of their channels); a change of a channel's filters at
  every file of the channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from sqlalchemy import and_, or_, select, true, update
from sqlalchemy.orm import Session

from taipan.db.models import Channel, File
from taipan.domain import cve as rules
from taipan.domain import filters as flt
from taipan.errors import InvalidInput
from taipan.services import cve_matching
from taipan.services.channels import add_event
from taipan.services.indexing import log_changes

# How many package names an Assessor keeps loaded: a cache, emptied when full (a name costs about
# 100 bytes plus the affects the CVE store has for it).
NAMES_CACHED = 200_000


class Assessor:
    """``(subdir, record) -> (score, status)`` for files of one family, from the CVE store as it is now.

    The affects of a name are loaded on first use, or ahead for a batch of names (``prime``, one query
    per 500 keys), through ``sessions`` (a context manager factory of database sessions); at most
    about ``limit`` names stay loaded, so a mirror run over 1.5M upstream records holds a bounded part
    of the CVE store whatever the number of names it meets. Records come sorted by file name, so the
    answer for the previous record's subdir, name and version is kept for its next builds.
    """

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]], family: str,
                 limit: int = NAMES_CACHED) -> None:
        self.sessions, self.family, self.limit = sessions, family, limit
        self.version_key = cve_matching._version_key(family)
        self.loaded: set[str] = set()
        self.by_key: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        self.states: dict[str, tuple[float | None, str]] = {}
        self._last: tuple[tuple[str, str, str], tuple[float | None, str | None]] | None = None

    def prime(self, names: Iterable[str]) -> None:
        """Load the affects of these names (those not loaded yet) at once."""
        new = set(names) - self.loaded
        if not new:
            return
        if len(self.loaded) + len(new) > self.limit:
            self.loaded, self.by_key, self.states = set(), {}, {}
        with self.sessions() as db:
            index = cve_matching.Index.load(db, {k for n in new for k in cve_matching.file_keys(self.family, n)})
            cve_ids = {c for specs in index.by_key.values() for c, _ in specs} - self.states.keys()
            self.states.update(cve_matching._cve_states(db, cve_ids))
        self.by_key.update(index.by_key)
        self.loaded |= new

    def __call__(self, subdir: str, rec: Mapping[str, Any]) -> tuple[float | None, str | None]:
        if self.version_key is None:
            return None, None
        what = (subdir, str(rec.get("name", "")), str(rec.get("version", "")))
        if self._last is None or self._last[0] != what:
            self._last = what, self._assess(*what)
        return self._last[1]

    def _assess(self, subdir: str, name: str, version: str) -> tuple[float | None, str | None]:
        if name not in self.loaded:
            self.prime([name])
        found: set[str] = set()
        for eco, key in cve_matching.file_keys(self.family, name):
            for cve_id, spec in self.by_key.get((eco, key), ()):
                if cve_id not in found and rules.affected(eco, spec, version, self.version_key, subdir):
                    found.add(cve_id)
        return rules.file_summary(self.states[c] for c in found if c in self.states)


def assessor(db: Session, family: str, names: set[str]) -> flt.CveOf:
    """An ``Assessor`` on this session with the affects of ``names`` loaded at once."""
    cve_of = Assessor(lambda: nullcontext(db), family, limit=max(NAMES_CACHED, len(names)))
    cve_of.prime(names)
    return cve_of


def mirror_keep(sessions: Any, family: str, partition: str, items: list[Any], name_of: Callable[[Any], str],
                version_of: Callable[[Any], str], filters: Mapping[str, Any], channel: Channel,
                progress: Any) -> list[Any]:
    """A mirror's and its channel's CVE filters over upstream files of any family; what each drops is
    counted in the sync state (``mirror_filtered.cve``, ``channel_filtered.cve``)."""
    threshold, uncurated = filters.get("cve_score_threshold"), bool(filters.get("exclude_non_curated_cve"))
    ch_threshold, ch_uncurated = _cve_rules(channel)
    if threshold is None and not uncurated and ch_threshold is None and not ch_uncurated:
        return items
    with sessions() as db:
        cve_of = assessor(db, family, {name_of(i) for i in items})
    kept, mirror_cut, channel_cut = [], 0, 0
    for item in items:
        score, status = cve_of(partition, {"name": name_of(item), "version": version_of(item)})
        if flt.cve_breach(score, status, ch_threshold, ch_uncurated):
            channel_cut += 1
        elif flt.cve_breach(score, status, threshold, uncurated):
            mirror_cut += 1
        else:
            kept.append(item)
    with progress._lock:
        count = progress.state["count"]
        for level, n in (("mirror_filtered", mirror_cut), ("channel_filtered", channel_cut)):
            bucket = count.setdefault(level, {})
            bucket["cve"] = bucket.get("cve", 0) + n
        progress.state.update(selected=len(kept))
    return kept


def _cve_rules(channel: Channel) -> tuple[float | None, bool]:
    f = flt.normalize_channel_filters({k: v for k, v in (channel.filters or {}).items()
                                       if k in (*flt.CHANNEL_FILTER_KEYS, "licenses")})
    return f.get("cve_score_threshold"), bool(f.get("exclude_non_curated_cve"))


def check_channel_filters(db: Session, channel: Channel, family: str, record: Mapping[str, Any], subdir: str,
                          *, cve: tuple[float | None, str | None] | None = None) -> None:
    """Refuse a file the channel's filters exclude (uploads and copies)."""
    raw = {k: v for k, v in (channel.filters or {}).items() if k in (*flt.CHANNEL_FILTER_KEYS, "licenses")}
    if not raw:
        return
    compiled = flt.compile_filters({}, raw)
    hint = f"The filters of channel {channel.path!r} exclude it (see `conda-repo channel --show {channel.path}`)"
    if family == "conda":  # licenses and MatchSpecs are conda's notions
        sel = flt.select({subdir: {"x": record}}, compiled)
        if not sel.kept.get(subdir):
            counts = sel.counts["channel_filtered"]
            which = next((k for k, v in counts.items() if v), "filter")
            raise InvalidInput(f"{record.get('name')} {record.get('version')} is excluded by the channel's "
                               f"{which.replace('_', ' ')} filter", hint, code="blocked_by_channel_filter")
    if compiled.uses_cves:
        score, status = cve if cve is not None else assessor(db, family, {str(record.get("name", ""))})(
            subdir, record)
        if flt.cve_breach(score, status, compiled.ch_cve_threshold, compiled.ch_exclude_uncurated):
            what = f"CVE score {score}" if score is not None and compiled.ch_cve_threshold is not None and \
                score >= compiled.ch_cve_threshold else "uncurated CVEs"
            raise InvalidInput(f"{record.get('name')} {record.get('version')} is excluded by the channel's CVE "
                               f"filter ({what})", hint, code="blocked_by_channel_filter")


def _breach(threshold: float | None, uncurated: bool) -> Any:
    conds = []
    if threshold is not None:
        conds.append(and_(File.cve_score.is_not(None), File.cve_score >= threshold))
    if uncurated:
        conds.append(File.cve_status == "reported")
    return or_(*conds)


def enforce(db: Session, channel_ids: list[str] | None = None, *,
            file_ids: Iterable[str] | None = None) -> dict[str, int]:
    """Withhold the files that break their channel's CVE filters; bring back those that no longer do.

    Every file of the channels ``channel_ids`` (all channels when None; after their filters changed),
    or only the files ``file_ids`` (after their scores changed): whether a file breaks its channel's
    filters depends on nothing else, so a CVE match of some files looks at those files only, whatever
    the size of their channels."""
    if file_ids is not None:
        by_channel: dict[str, list[str]] = {}
        ids = sorted(set(file_ids))
        for i in range(0, len(ids), CHUNK):
            for fid, cid in db.execute(select(File.id, File.channel_id).where(File.id.in_(ids[i:i + CHUNK]))):
                by_channel.setdefault(cid, []).append(fid)
        scopes = {cid: [File.id.in_(part[i:i + CHUNK]) for i in range(0, len(part), CHUNK)]
                  for cid, part in by_channel.items()}
        channels = db.scalars(select(Channel).where(Channel.id.in_(list(scopes)))) if scopes else []
    else:
        q = select(Channel)
        if channel_ids is not None:
            q = q.where(Channel.id.in_(channel_ids))
        channels, scopes = db.scalars(q), {}
    withheld = restored = 0
    for channel in channels:
        hidden, shown = _enforce_channel(db, channel, scopes.get(channel.id, [true()]))
        withheld, restored = withheld + hidden, restored + shown
    return {"withheld": withheld, "restored": restored}


# File ids per query of ``enforce(file_ids=...)``.
CHUNK = 500


def _enforce_channel(db: Session, channel: Channel, scopes: list[Any]) -> tuple[int, int]:
    """``enforce`` over the files of one channel that each of ``scopes`` (conditions on File) selects."""
    threshold, uncurated = _cve_rules(channel)
    breach = _breach(threshold, uncurated) if threshold is not None or uncurated else None
    hide: list[Any] = []
    show: list[Any] = []
    for scope in scopes:
        if breach is not None:
            hide += db.execute(
                select(File.id, File.ckey, File.subdir, File.filename, File.cve_score, File.cve_status)
                .where(File.channel_id == channel.id, File.withheld.is_(False), breach, scope)).all()
        show_q = select(File.id, File.ckey, File.subdir, File.filename).where(
            File.channel_id == channel.id, File.withheld == true(), scope)  # ix_files_withheld_channel
        if breach is not None:
            show_q = show_q.where(~breach)
        show += db.execute(show_q).all()
    if hide:
        db.execute(update(File).where(File.id.in_([r.id for r in hide])).values(withheld=True))
        log_changes(db, channel.id, [(r.subdir, r.filename) for r in hide], even_if_frozen=True)
        add_event(db, channel, "artifacts_withheld", None, reason="cve_filter",
                  cve_score_threshold=threshold, exclude_non_curated_cve=uncurated,
                  files=[{"ckey": r.ckey, "cve_score": r.cve_score, "cve_status": r.cve_status}
                         for r in hide[:1000]], count=len(hide))
    if show:
        db.execute(update(File).where(File.id.in_([r.id for r in show])).values(withheld=False))
        log_changes(db, channel.id, [(r.subdir, r.filename) for r in show], even_if_frozen=True)
        add_event(db, channel, "artifacts_restored", None, reason="cve_filter",
                  ckeys=[r.ckey for r in show[:1000]], count=len(show))
    return len(hide), len(show)


def channels_with_cve_filters(db: Session) -> list[str]:
    """Channels with CVE filters, and channels holding withheld files (their filters may be gone)."""
    ids = {c.id for c in db.scalars(select(Channel)) if any(_cve_rules(c))}
    ids.update(db.scalars(withheld_channels()))
    return sorted(ids)


def withheld_channels() -> Any:
    """The ids of the channels holding withheld files (a select answered from the partial index
    ``ix_files_withheld_channel``, whose condition ``withheld = true`` it spells the same way)."""
    return select(File.channel_id).where(File.withheld == true()).distinct()
