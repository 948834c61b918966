"""Mirror and channel filters: validation of their JSON, and selection of upstream records.

A record is dropped by the *first* filter that rejects it, and that filter's counter goes up, so the
sync state can say exactly what each filter removed. Order: channel license, channel exclude specs,
then the mirror's date window, licenses, only specs, exclude specs (re-admitted by include specs),
and finally ``.tar.bz2`` files that duplicate a kept ``.conda`` of the same build.
"""

from __future__ import annotations

import calendar
import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from taipan.domain.matchspec import Spec, license_family, package_record, parse_license_list, parse_spec
from taipan.domain.names import validate_subdir
from taipan.errors import InvalidInput

MIRROR_TYPES = ("conda", "python_simple", "CRAN")
MIRROR_MODES = ("active", "passive")
DEFAULT_CRON = "0 0 * * *"
_LIST_KEYS = ("subdirs", "projects", "include_licenses", "exclude_licenses", "only_specs",
              "exclude_specs", "include_specs", "python_tags", "platform_tags")
MIRROR_FILTER_KEYS = _LIST_KEYS + ("date_from", "date_to", "cve_score_threshold",
                                   "exclude_non_curated_cve", "only_signed", "include_dependencies",
                                   "include_archive")
CHANNEL_FILTER_KEYS = ("include_licenses", "exclude_licenses", "exclude_specs", "cve_score_threshold",
                       "exclude_non_curated_cve")

Records = Mapping[str, Mapping[str, Any]]  # filename -> repodata record


def _as_list(key: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple):
        raise InvalidInput(f"filters.{key} must be a list", f"Give a JSON list for {key}",
                           code="invalid_filters")
    return [str(v).strip() for v in value if str(v).strip()]


def parse_date(key: str, value: Any) -> date:
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidInput(f"filters.{key} {value!r} is not a date", "Use YYYY-MM-DD, e.g. 2024-03-01",
                           code="invalid_date") from exc


def one_year_after(d: date) -> date:
    day = min(d.day, calendar.monthrange(d.year + 1, d.month)[1])
    return d.replace(year=d.year + 1, day=day)


def check_date_window(date_from: Any, date_to: Any) -> tuple[str, str] | None:
    if date_from in (None, "") and date_to in (None, ""):
        return None
    if date_from in (None, "") or date_to in (None, ""):
        raise InvalidInput("A date window needs both date_from and date_to",
                           "Give --date_from YYYY-MM-DD --date_to YYYY-MM-DD", code="invalid_date")
    start, end = parse_date("date_from", date_from), parse_date("date_to", date_to)
    if start > end:
        raise InvalidInput(f"date_from {start} is after date_to {end}", "Swap the two dates",
                           code="invalid_date")
    if end > one_year_after(start):
        raise InvalidInput(f"The date window {start} .. {end} spans more than one year",
                           "A window may span at most one year; create one mirror per year",
                           code="invalid_date")
    return start.isoformat(), end.isoformat()


def _load(where: tuple[str, str]) -> Any:
    return getattr(importlib.import_module(where[0]), where[1])


def _spec_parser(mirror_type: str) -> Any:
    """What a mirror type's specs are: MatchSpecs (conda), PEP 508 requirements (python_simple,
    'requests>=2.31,<3'), R requirements (CRAN, 'ggplot2 (>= 3.4)' or 'ggplot2>=3.4', globs)."""
    return _load(_SPEC_PARSERS[mirror_type]) if mirror_type in _SPEC_PARSERS else parse_spec


# What --subdirs names for mirror types other than conda: CRAN's trees (src/contrib, bin/windows/...).
_SUBDIR_CHECKS = {"CRAN": ("taipan.domain.cran_upstream", "validate_partition")}


_SPEC_PARSERS = {"python_simple": ("taipan.domain.python_simple", "parse_requirement"),
                 "CRAN": ("taipan.domain.cran", "parse_requirement")}


def normalize_mirror_filters(raw: Mapping[str, Any] | None, mirror_type: str = "conda") -> dict[str, Any]:
    """Validate the ``filters`` object of a mirror; return it in canonical form (no empty keys)."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(MIRROR_FILTER_KEYS))
    if unknown:
        raise InvalidInput(f"Unknown mirror filter(s): {', '.join(unknown)}",
                           "Known filters: " + ", ".join(MIRROR_FILTER_KEYS), code="invalid_filters")
    out: dict[str, Any] = {}
    for key in _LIST_KEYS:
        values = _as_list(key, raw.get(key))
        if values:
            out[key] = values
    if mirror_type in ("conda", *_SUBDIR_CHECKS):
        check = validate_subdir if mirror_type == "conda" else _load(_SUBDIR_CHECKS[mirror_type])
        out["subdirs"] = [check(s) for s in dict.fromkeys(out.get("subdirs", []))] or None
        if out["subdirs"] is None:
            del out["subdirs"]
    inc, exc = parse_license_list(out.get("include_licenses", []))
    inc2, exc2 = parse_license_list("-" + x for x in out.get("exclude_licenses", []))
    _set(out, "include_licenses", inc + [x for x in inc2 if x not in inc])
    _set(out, "exclude_licenses", list(dict.fromkeys(exc + exc2)))
    for key in ("only_specs", "exclude_specs", "include_specs"):
        for text in out.get(key, []):
            _spec_parser(mirror_type)(text)
    if out.get("only_specs") and (out.get("exclude_specs") or out.get("include_specs")):
        raise InvalidInput("only_specs cannot be combined with exclude_specs or include_specs",
                           "Use either --only_spec, or --exclude_spec with --include_spec",
                           code="invalid_filters")
    window = check_date_window(raw.get("date_from"), raw.get("date_to"))
    if window:
        out["date_from"], out["date_to"] = window
    score = raw.get("cve_score_threshold")
    if score not in (None, ""):
        try:
            out["cve_score_threshold"] = float(score)
        except (TypeError, ValueError):
            out["cve_score_threshold"] = -1.0
        if not 0.0 <= out["cve_score_threshold"] <= 10.0:
            raise InvalidInput(f"cve_score_threshold {score!r} is out of range",
                               "Give a CVE score between 0.0 and 10.0", code="invalid_filters")
    for flag in ("exclude_non_curated_cve", "only_signed", "include_dependencies", "include_archive"):
        if raw.get(flag):
            out[flag] = True
    return out


def normalize_channel_filters(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """The mirror-relevant part of ``channels.filters``: licenses and exclude specs."""
    raw = dict(raw or {})
    out: dict[str, Any] = {}
    inc, exc = parse_license_list(_as_list("include_licenses", raw.get("include_licenses")))
    if "licenses" in raw:  # the CLI's "-gpl3,mit" form
        inc2, exc2 = parse_license_list(_as_list("licenses", raw.get("licenses")))
        inc, exc = inc + inc2, exc + exc2
    _, exc3 = parse_license_list("-" + x for x in _as_list("exclude_licenses", raw.get("exclude_licenses")))
    _set(out, "include_licenses", list(dict.fromkeys(inc)))
    _set(out, "exclude_licenses", list(dict.fromkeys(exc + exc3)))
    specs = _as_list("exclude_specs", raw.get("exclude_specs"))
    for text in specs:
        parse_spec(text)
    _set(out, "exclude_specs", specs)
    out.update(_cve_filters(raw))
    return out


def _cve_filters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``cve_score_threshold`` (files scoring at or above it are dropped; 0-10, one decimal) and
    ``exclude_non_curated_cve`` (files with any uncurated, i.e. ``reported``, CVE are dropped)."""
    out: dict[str, Any] = {}
    score = raw.get("cve_score_threshold")
    if score not in (None, ""):
        try:
            value = round(float(score), 1)
        except (TypeError, ValueError):
            value = -1.0
        if isinstance(score, bool) or not 0.0 <= value <= 10.0:
            raise InvalidInput(f"cve_score_threshold {score!r} is out of range",
                               "Give a CVE score between 0.0 and 10.0", code="invalid_filters")
        out["cve_score_threshold"] = value
    flag = raw.get("exclude_non_curated_cve")
    if isinstance(flag, str):
        if flag.strip().lower() not in ("true", "false", "1", "0", "yes", "no", ""):
            raise InvalidInput(f"exclude_non_curated_cve {flag!r} is not true or false", "Give True or False",
                               code="invalid_filters")
        flag = flag.strip().lower() in ("true", "1", "yes")
    if flag:
        out["exclude_non_curated_cve"] = True
    return out


def cve_breach(score: float | None, status: str | None, threshold: float | None, exclude_uncurated: bool) -> bool:
    """Does a file with this CVE score and status break these CVE filters?"""
    if threshold is not None and score is not None and score >= threshold:
        return True
    return bool(exclude_uncurated and status == "reported")


def _set(out: dict[str, Any], key: str, value: list[str]) -> None:
    if value:
        out[key] = value
    else:
        out.pop(key, None)


def empty_counts() -> dict[str, Any]:
    return {
        "mirror_filtered": {"cve": 0, "date": 0, "license": 0, "only_specs": 0, "exclude_specs": 0,
                            "duplicated_legacy_conda": 0},
        "channel_filtered": {"license": 0, "exclude_specs": 0},  # "cve" too, once a channel CVE filter drops
    }


@dataclass
class Selection:
    kept: dict[str, dict[str, Mapping[str, Any]]]  # subdir -> filename -> record
    counts: dict[str, Any] = field(default_factory=empty_counts)
    evaluated: int = 0

    @property
    def kept_count(self) -> int:
        return sum(len(v) for v in self.kept.values())


class SpecSet:
    """Several specs, indexed by exact name so a record meets only the specs that name it."""

    def __init__(self, specs: Iterable[Spec]) -> None:
        self.by_name: dict[str, list[Spec]] = {}
        self.globs: list[Spec] = []
        for spec in specs:
            if spec.name is not None:
                self.by_name.setdefault(spec.name, []).append(spec)
            else:
                self.globs.append(spec)

    def __bool__(self) -> bool:
        return bool(self.by_name or self.globs)

    def any_match(self, record: Mapping[str, Any]) -> bool:
        name = str(record.get("name", "")).lower()
        candidates = self.by_name.get(name, [])
        return any(s.matches(record) for s in candidates) or any(s.matches(record) for s in self.globs)

    def could_match(self, name: str) -> bool:
        return name.lower() in self.by_name or any(s.name_matches(name) for s in self.globs)


@dataclass
class CompiledFilters:
    subdirs: list[str] | None
    include_licenses: frozenset[str]
    exclude_licenses: frozenset[str]
    only: SpecSet
    exclude: SpecSet
    include: SpecSet
    window: tuple[float, float] | None  # [start, end) in epoch milliseconds
    include_dependencies: bool
    ch_include_licenses: frozenset[str]
    ch_exclude_licenses: frozenset[str]
    ch_exclude: SpecSet
    cve_threshold: float | None = None
    exclude_uncurated: bool = False
    ch_cve_threshold: float | None = None
    ch_exclude_uncurated: bool = False

    @property
    def exact_names(self) -> frozenset[str] | None:
        """The package names ``only_specs`` admit when every one names its package exactly."""
        if not self.only or self.only.globs:
            return None
        return frozenset(self.only.by_name)

    @property
    def closes_dependencies(self) -> bool:
        """Only specs with their dependencies: the selection needs every candidate at once."""
        return bool(self.only) and self.include_dependencies

    @property
    def uses_cves(self) -> bool:
        return (self.cve_threshold is not None or self.exclude_uncurated or self.ch_cve_threshold is not None
                or self.ch_exclude_uncurated)


def compile_filters(mirror: Mapping[str, Any], channel: Mapping[str, Any] | None = None) -> CompiledFilters:
    m = normalize_mirror_filters(mirror)
    c = normalize_channel_filters(channel)
    window = None
    if m.get("date_from"):
        start = datetime.combine(date.fromisoformat(m["date_from"]), datetime.min.time(), UTC)
        end = datetime.combine(date.fromisoformat(m["date_to"]) + timedelta(days=1),
                               datetime.min.time(), UTC)
        window = (start.timestamp() * 1000, end.timestamp() * 1000)
    specs = {k: SpecSet(parse_spec(t) for t in m.get(k, [])) for k in
             ("only_specs", "exclude_specs", "include_specs")}
    return CompiledFilters(
        subdirs=m.get("subdirs"),
        include_licenses=frozenset(m.get("include_licenses", [])),
        exclude_licenses=frozenset(m.get("exclude_licenses", [])),
        only=specs["only_specs"], exclude=specs["exclude_specs"], include=specs["include_specs"],
        window=window, include_dependencies=bool(m.get("include_dependencies")),
        ch_include_licenses=frozenset(c.get("include_licenses", [])),
        ch_exclude_licenses=frozenset(c.get("exclude_licenses", [])),
        ch_exclude=SpecSet(parse_spec(t) for t in c.get("exclude_specs", [])),
        cve_threshold=m.get("cve_score_threshold"), exclude_uncurated=bool(m.get("exclude_non_curated_cve")),
        ch_cve_threshold=c.get("cve_score_threshold"), ch_exclude_uncurated=bool(c.get("exclude_non_curated_cve")),
    )


def timestamp_ms(record: Mapping[str, Any]) -> float | None:
    ts = record.get("timestamp")
    if not isinstance(ts, int | float) or ts <= 0:
        return None
    # Old records carry seconds; anything before 1973 in milliseconds is really seconds.
    return float(ts) * 1000 if ts < 1e11 else float(ts)


def _license_ok(fam: str, include: frozenset[str], exclude: frozenset[str]) -> bool:
    return (not include or fam in include) and fam not in exclude


def first_drop(rec: Mapping[str, Any], f: CompiledFilters) -> tuple[str, str] | None:
    """Which non-spec filter drops the record, if any, as (level, counter)."""
    if f.ch_include_licenses or f.ch_exclude_licenses or f.include_licenses or f.exclude_licenses:
        fam = license_family(rec)
        if not _license_ok(fam, f.ch_include_licenses, f.ch_exclude_licenses):
            return "channel_filtered", "license"
    else:
        fam = ""
    if f.ch_exclude and f.ch_exclude.any_match(rec):
        return "channel_filtered", "exclude_specs"
    if f.window is not None:
        ts = timestamp_ms(rec)
        if ts is None or not f.window[0] <= ts < f.window[1]:
            return "mirror_filtered", "date"
    if (f.include_licenses or f.exclude_licenses) and not _license_ok(fam, f.include_licenses,
                                                                        f.exclude_licenses):
        return "mirror_filtered", "license"
    if f.exclude and f.exclude.any_match(rec) and not (f.include and f.include.any_match(rec)):
        return "mirror_filtered", "exclude_specs"
    return None


CveOf = Callable[[str, Mapping[str, Any]], tuple[float | None, str | None]]


def cve_drop(subdir: str, rec: Mapping[str, Any], f: CompiledFilters, cve_of: CveOf) -> tuple[str, str] | None:
    score, status = cve_of(subdir, rec)
    if cve_breach(score, status, f.ch_cve_threshold, f.ch_exclude_uncurated):
        return "channel_filtered", "cve"
    if cve_breach(score, status, f.cve_threshold, f.exclude_uncurated):
        return "mirror_filtered", "cve"
    return None


def select(upstream: Mapping[str, Records], filters: CompiledFilters, cve_of: CveOf | None = None) -> Selection:
    """Apply the filters to the records of every mirrored subdir (``subdir -> filename -> record``).
    ``cve_of(subdir, record)`` gives a record's CVE score and status, for the CVE filters.

    Every record in memory: the engine of the one-record channel checks (uploads, copies), and the
    reference that ``stream_filters.StreamSelector`` (what mirror runs use) is tested against."""
    if not filters.uses_cves:
        cve_of = None
    sel = Selection(kept={})
    counts = sel.counts
    pool: dict[str, dict[str, Mapping[str, Any]]] = {}
    for subdir, records in upstream.items():
        if filters.subdirs is not None and subdir not in filters.subdirs:
            continue
        sel.evaluated += len(records)
        kept = pool.setdefault(subdir, {})
        for fn, rec in records.items():
            drop = first_drop(rec, filters)
            if drop is None and cve_of is not None:
                drop = cve_drop(subdir, rec, filters, cve_of)
            if drop is None:
                kept[fn] = rec
            else:
                counts[drop[0]][drop[1]] = counts[drop[0]].get(drop[1], 0) + 1
    if filters.only:
        chosen = {sd: {fn: r for fn, r in recs.items()
                       if filters.only.could_match(str(r.get("name", ""))) and filters.only.any_match(r)}
                  for sd, recs in pool.items()}
        if filters.include_dependencies:
            chosen = dependency_closure(chosen, pool)
        counts["mirror_filtered"]["only_specs"] = sum(len(pool[sd]) - len(chosen[sd]) for sd in pool)
    else:
        chosen = pool
    for subdir, recs in chosen.items():
        sel.kept[subdir] = drop_legacy_duplicates(recs, counts)
    return sel


def drop_legacy_duplicates(records: Records, counts: dict[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Drop ``X.tar.bz2`` when ``X.conda`` is kept: same build, newer format, every client reads it."""
    stems = {fn[:-6] for fn in records if fn.endswith(".conda")}
    out: dict[str, Mapping[str, Any]] = {}
    for fn, rec in records.items():
        if fn.endswith(".tar.bz2") and fn[:-8] in stems:
            counts["mirror_filtered"]["duplicated_legacy_conda"] += 1
        else:
            out[fn] = rec
    return out


def dependency_closure(chosen: Mapping[str, Records],
                       pool: Mapping[str, Records]) -> dict[str, dict[str, Any]]:
    """Add to ``chosen`` every pool record that a chosen record depends on, transitively.

    Every version that matches a dependency is taken (not just the one a solver would pick), so any
    environment a solver can build from the chosen specs can be built from the mirror. A platform
    record's dependencies come from its own subdir or noarch; a noarch record's from any subdir.
    """
    by_name: dict[str, list[tuple[str, str, Mapping[str, Any]]]] = {}
    for sd, recs in pool.items():
        for fn, rec in recs.items():
            by_name.setdefault(str(rec.get("name", "")).lower(), []).append((sd, fn, rec))
    out: dict[str, dict[str, Any]] = {sd: dict(chosen.get(sd, {})) for sd in pool}
    todo = [(sd, rec) for sd, recs in chosen.items() for rec in recs.values()]
    seen_deps: set[tuple[str, str]] = set()
    specs: dict[str, Spec | None] = {}
    while todo:
        sd, rec = todo.pop()
        scope = "*" if sd == "noarch" else sd
        for dep in rec.get("depends") or []:
            if (scope, dep) in seen_deps:
                continue
            seen_deps.add((scope, dep))
            spec = specs.get(dep, False)
            if spec is False:
                spec = specs[dep] = dep_spec(dep)
            if spec is None or spec.name is None:
                continue
            for cand_sd, fn, cand in by_name.get(spec.name, []):
                if scope not in ("*", cand_sd) and cand_sd != "noarch":
                    continue
                if fn not in out[cand_sd] and spec.match_spec.matches(package_record(cand)):
                    out[cand_sd][fn] = cand
                    todo.append((cand_sd, cand))
    return out


def dep_spec(text: str) -> Spec | None:
    if text.startswith("__"):  # virtual packages are provided by the client machine
        return None
    try:
        return parse_spec(text)
    except InvalidInput:
        return None


def validate_cron(expr: Any) -> str:
    """A five-field cron expression (minute hour day month weekday), checked with croniter."""
    from croniter import croniter

    text = " ".join(str(expr or "").split())
    if len(text.split(" ")) != 5 or not croniter.is_valid(text):
        raise InvalidInput(f"Invalid cron expression {expr!r}",
                           "Use five fields: minute hour day-of-month month day-of-week, "
                           f"e.g. '{DEFAULT_CRON}' (daily at midnight UTC) or '*/30 * * * *'",
                           code="invalid_cron")
    try:  # valid syntax can still name a day that never comes (30 February): scheduling would fail
        croniter(text, datetime(2001, 1, 1, tzinfo=UTC)).get_next(datetime)
    except Exception as exc:  # CroniterBadDateError and friends
        raise InvalidInput(f"The cron expression {text!r} never fires", "Check the day-of-month and month "
                           f"fields, e.g. '{DEFAULT_CRON}' (daily at midnight UTC)", code="invalid_cron") from exc
    return text
