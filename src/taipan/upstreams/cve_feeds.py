"""Fetching CVE feeds over HTTP: NVD CVE API 2.0 pages and OSV files (with ETags)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taipan.errors import TaipanError

if TYPE_CHECKING:  # imported on use (see taipan.upstreams.conda)
    import httpx

MAX_FEED_BYTES = 8 * 1024**3  # an osv.dev ecosystem zip is ~1 GB at most; more is not a feed
NVD_WINDOW_DAYS = 120  # NVD refuses lastModStartDate..lastModEndDate ranges longer than this


class FeedError(TaipanError):
    def __init__(self, message: str, hint: str = "Check TAIPAN_CVE__NVD_URL / TAIPAN_CVE__OSV_URLS and the network"):
        super().__init__(message, hint, code="cve_feed_failed")


def _redact(url: str) -> str:
    return url.split("?", 1)[0]


def _client(timeout: float) -> httpx.Client:
    import httpx

    return httpx.Client(timeout=timeout, follow_redirects=True, headers={"User-Agent": "taipan-cve-sync"})


def _stream_to(resp: httpx.Response, dest: Path) -> int:
    size = 0
    with dest.open("wb") as out:
        for chunk in resp.iter_bytes(1 << 20):
            size += len(chunk)
            if size > MAX_FEED_BYTES:
                raise FeedError(f"{_redact(str(resp.url))} is larger than {MAX_FEED_BYTES} bytes")
            out.write(chunk)
    return size


@dataclass
class Fetched:
    path: Path | None  # None: not modified (304)
    etag: str | None
    last_modified: str | None


def fetch_if_changed(url: str, dest: Path, *, etag: str | None, last_modified: str | None,
                     timeout: float = 60.0) -> Fetched:
    """GET ``url`` into ``dest`` unless the server says it has not changed (If-None-Match/-Modified-Since)."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    import httpx

    try:
        with _client(timeout) as client, client.stream("GET", url, headers=headers) as resp:
            if resp.status_code == 304:
                return Fetched(None, etag, last_modified)
            if resp.status_code != 200:
                raise FeedError(f"GET {_redact(url)} answered HTTP {resp.status_code}")
            _stream_to(resp, dest)
            return Fetched(dest, resp.headers.get("ETag"), resp.headers.get("Last-Modified"))
    except httpx.HTTPError as exc:
        raise FeedError(f"GET {_redact(url)} failed: {type(exc).__name__}") from exc


def _nvd_time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def nvd_pages(url: str, workdir: Path, *, since: datetime | None, until: datetime, api_key: str = "",
              page_size: int = 2000, timeout: float = 60.0, pause: float = 0.0) -> Iterator[Path]:
    """Every page of CVEs modified in (since, until] (all CVEs when ``since`` is None), each written to a
    file in ``workdir``; windows longer than NVD allows are split."""
    from datetime import timedelta

    import httpx

    windows: list[tuple[datetime | None, datetime | None]] = []
    if since is None:
        windows.append((None, None))
    else:
        start = since
        while start < until:
            end = min(until, start + timedelta(days=NVD_WINDOW_DAYS))
            windows.append((start, end))
            start = end
    headers = {"apiKey": api_key} if api_key else {}
    n = 0
    with _client(timeout) as client:
        for start, end in windows:
            index = 0
            while True:
                params: dict[str, Any] = {"startIndex": index, "resultsPerPage": page_size}
                if start is not None and end is not None:
                    params.update(lastModStartDate=_nvd_time(start), lastModEndDate=_nvd_time(end))
                try:
                    with client.stream("GET", url, params=params, headers=headers) as resp:
                        if resp.status_code != 200:
                            raise FeedError(f"GET {_redact(url)} answered HTTP {resp.status_code}")
                        dest = workdir / f"nvd-{n:05d}.json"
                        _stream_to(resp, dest)
                except httpx.HTTPError as exc:
                    raise FeedError(f"GET {_redact(url)} failed: {type(exc).__name__}") from exc
                n += 1
                total, count = _page_counts(dest)
                yield dest
                index += count
                if count == 0 or index >= total:
                    break
                if pause:
                    time.sleep(pause)


def _page_counts(path: Path) -> tuple[int, int]:
    """(totalResults, number of records on this page), read without loading the page twice."""
    import ijson

    total = count = 0
    with path.open("rb") as fh:
        for prefix, event, value in ijson.parse(fh):
            if prefix == "totalResults" and event == "number":
                total = int(value)
            elif prefix == "vulnerabilities.item" and event == "start_map":
                count += 1
    return total, count
