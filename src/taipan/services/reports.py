"""The download-history report (``POST /api/reports/artifact_downloads``): one row per recorded
download in a date range (at most one year), optionally for some users and channels.

Admins see every download; everyone else the downloads of the channels they own (a channel's
subchannels come with it). Rows are streamed from a database cursor in batches, so memory stays flat
however many rows a report has.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from sqlalchemy import Select, String, func, or_, select, type_coerce
from sqlalchemy.orm import Session, sessionmaker

from taipan.db.models import Channel, Download
from taipan.domain.permissions import Principal
from taipan.errors import Forbidden, InvalidInput
from taipan.services.channels import get_channel, owner_ids, require_read, require_scope

FORMATS = ("json", "csv")
MAX_NAMES = 1000
BATCH = 5000
DAYS = 30  # the UI's download chart
TOP = 10
COLUMNS = ("downloaded_at", "username", "token_name", "channel", "family", "package", "version", "platform",
           "filename", "ckey", "size", "cve_ids", "cve_max_score", "user_agent", "client_address")
ANONYMOUS = "anonymous"
HINT = 'Send {"from_date": "YYYY-MM-DD", "to_date": "YYYY-MM-DD", "download_as": "json"|"csv", ' \
       '"user_names": [...], "channel_names": [...]}'


@dataclass(frozen=True)
class ReportQuery:
    from_date: date
    to_date: date
    fmt: str
    user_names: tuple[str, ...]
    channel_ids: tuple[str, ...] | None  # None: every channel (admins without a channel filter)

    @property
    def filename(self) -> str:
        return f"artifact_downloads_{self.from_date.isoformat()}_{self.to_date.isoformat()}.{self.fmt}"


def _date(value: Any, field: str, default: date | None = None) -> date:
    if value in (None, "") and default is not None:
        return default
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInput(f"{field} is missing or not a date", HINT, code="invalid_report")
    try:
        return date.fromisoformat(value[:10]) if len(value) > 10 and value[10] in "T " else date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(f"{field} {value!r} is not a date (YYYY-MM-DD)", HINT, code="invalid_report") from exc


def _names(value: Any, field: str, max_len: int) -> tuple[str, ...]:
    if value in (None, "", []):
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{field} is not a list of names", HINT, code="invalid_report")
    names = tuple(dict.fromkeys(v.strip() for v in value if v.strip()))
    if len(names) > MAX_NAMES or any(len(n) > max_len for n in names):
        raise InvalidInput(f"{field} has more than {MAX_NAMES} names or a name longer than {max_len} characters",
                           "Ask for fewer names per report", code="invalid_report")
    return names


def one_year_after(d: date) -> date:
    try:
        return d.replace(year=d.year + 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year + 1, day=28) + timedelta(days=1)


def parse(db: Session, p: Principal, body: Any, *, today: date | None = None) -> ReportQuery:
    """Check the request and the caller's rights; which channels the report may cover."""
    require_scope(p, "channel:history")
    if not isinstance(body, Mapping):
        raise InvalidInput("The report request is not a JSON object", HINT, code="invalid_report")
    today = today or datetime.now(UTC).date()
    from_date = _date(body.get("from_date"), "from_date")
    to_date = _date(body.get("to_date"), "to_date", default=today)
    if to_date < from_date:
        raise InvalidInput(f"to_date {to_date} is before from_date {from_date}", "Swap the dates",
                           code="invalid_date_range")
    if to_date > one_year_after(from_date):
        raise InvalidInput(f"The date range {from_date} to {to_date} is longer than one year",
                           f"Ask for at most one year at a time (to_date up to {one_year_after(from_date)}), "
                           "and run several reports for longer periods", code="date_range_too_long")
    raw_fmt = body.get("download_as")
    if raw_fmt is not None and not isinstance(raw_fmt, str):  # {} or false must not mean "json"
        raise InvalidInput("download_as must be the text json or csv", HINT, code="invalid_report")
    fmt = (raw_fmt or "json").strip().lower()
    if fmt not in FORMATS:
        raise InvalidInput(f"Unknown report format {fmt[:20]!r}", "download_as is json or csv", code="invalid_report")
    users = _names(body.get("user_names"), "user_names", 64)
    channel_names = _names(body.get("channel_names"), "channel_names", 130)
    channel_ids: tuple[str, ...] | None
    if channel_names:
        ids: list[str] = []
        for name in channel_names:
            channel = get_channel(db, name)
            require_read(p, channel)
            if not p.is_admin and p.user_id not in owner_ids(channel):
                raise Forbidden(f"You are not an owner of channel {channel.path!r}",
                                "Reports cover the channels you own; an admin can report on every channel",
                                code="channel_forbidden")
            ids.append(channel.id)
            ids += db.scalars(select(Channel.id).where(Channel.parent_id == channel.id))
        channel_ids = tuple(dict.fromkeys(ids))
    elif p.is_admin:
        channel_ids = None
    else:
        channel_ids = tuple(c.id for c in db.scalars(select(Channel)) if p.user_id in owner_ids(c))
    return ReportQuery(from_date, to_date, fmt, users, channel_ids)


def statement(q: ReportQuery) -> Select[Any]:
    start = datetime.combine(q.from_date, time.min)
    end = datetime.combine(q.to_date + timedelta(days=1), time.min)
    at = type_coerce(Download.at, String()).label("at")  # see _timestamp
    stmt = select(at, Download.username, Download.token_name, Download.channel_path, Download.family,
                  Download.package, Download.version, Download.subdir, Download.filename, Download.ckey,
                  Download.size, Download.cve_ids, Download.cve_score, Download.user_agent,
                  Download.remote_addr).where(Download.at >= start, Download.at < end)
    if q.channel_ids is not None:
        stmt = stmt.where(Download.channel_id.in_(q.channel_ids))
    if q.user_names:
        named = [n for n in q.user_names if n != ANONYMOUS]
        conditions = [Download.username.in_(named)] if named else []
        if ANONYMOUS in q.user_names:
            conditions.append(Download.username.is_(None))
        stmt = stmt.where(or_(*conditions))
    return stmt.order_by(Download.at, Download.id)


def _timestamp(value: Any) -> str:
    """ISO 8601 UTC. The column is read without conversion: SQLite gives its stored text
    (``YYYY-MM-DD HH:MM:SS.ffffff``, UTC), PostgreSQL a datetime."""
    if isinstance(value, str):
        return value.replace(" ", "T", 1) + "Z"
    at = value if value.tzinfo else value.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _values(row: Any) -> list[Any]:
    """A row's values in COLUMNS order (cve_ids still as stored: space-separated text or None)."""
    ckey = row[9]
    return [_timestamp(row[0]), row[1] or ANONYMOUS, row[2], row[3], row[4], row[5], row[6],
            row[7] or (ckey.split("/", 1)[0] if "/" in ckey else None), row[8] or ckey.rsplit("/", 1)[-1], ckey,
            row[10], row[11], row[12], row[13], row[14]]


def stream(sessions: sessionmaker[Session], q: ReportQuery) -> Iterator[bytes]:
    """The report's bytes, a batch of rows at a time, from one database cursor."""
    with sessions() as db:
        conn = db.connection().execution_options(stream_results=True, max_row_buffer=BATCH)
        result = conn.execute(statement(q))
        if q.fmt == "json":
            head = {"from_date": q.from_date.isoformat(), "to_date": q.to_date.isoformat(), "columns": COLUMNS}
            yield orjson.dumps(head)[:-1] + b', "downloaded_items": ['
            count = 0
            for rows in result.partitions(BATCH):
                parts = []
                for row in rows:
                    values = _values(row)
                    values[11] = values[11].split() if values[11] else []
                    item = orjson.dumps(dict(zip(COLUMNS, values, strict=True)))
                    parts.append((b"\n" if count == 0 else b",\n") + item)
                    count += 1
                yield b"".join(parts)
            yield b"\n], \"count\": " + str(count).encode() + b"}\n"
        else:
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\n")
            writer.writerow(COLUMNS)
            yield buf.getvalue().encode()
            for rows in result.partitions(BATCH):
                buf.seek(0)
                buf.truncate()
                writer.writerows(_values(row) for row in rows)
                yield buf.getvalue().encode()


def download_stats(db: Session, channel: Channel, *, today: date | None = None) -> dict[str, Any]:
    """Downloads of a channel (and its subchannels) in the last DAYS days: per day and per package."""
    today = today or datetime.now(UTC).date()
    start = today - timedelta(days=DAYS - 1)
    ids = [channel.id, *db.scalars(select(Channel.id).where(Channel.parent_id == channel.id))]
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    day = func.date(Download.at)
    per_day = {str(d)[:10]: n for d, n in db.execute(
        select(day, func.count()).where(Download.channel_id.in_(ids), Download.at >= since).group_by(day))}
    days = [(start + timedelta(days=i)).isoformat() for i in range(DAYS)]
    per_package = db.execute(
        select(Download.package, func.count().label("n")).where(Download.channel_id.in_(ids), Download.at >= since)
        .group_by(Download.package).order_by(func.count().desc(), Download.package).limit(TOP)).all()
    return {"days": [(d, per_day.get(d, 0)) for d in days], "packages": [(p or "?", n) for p, n in per_package],
            "total": sum(per_day.values())}
