"""Fetch a conda channel over http(s): subdirs, repodata (``.zst`` preferred) or only the CEP-16 shards
of some package names, verified files.

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with exponential backoff;
what still fails becomes an ``UpstreamError`` with a hint, never a crash. Downloads resume from a
partial file with a Range request and are checked against the sha256 and size of the record.

httpx is imported where it is used: importing it costs a server process ~6 MB (with the command line
it brings, rich and pygments), and a server that mirrors nothing never needs it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urljoin

import ijson
import msgpack
import orjson
import zstandard

from taipan import __version__
from taipan.domain.egress import EgressPolicy
from taipan.domain.names import KNOWN_SUBDIRS
from taipan.domain.urls import redact_url, unmask
from taipan.errors import UpstreamError
from taipan.upstreams.egress import guarded_transport, request_hook

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)
CHUNK = 256 * 1024
SHARD_INDEX = "repodata_shards.msgpack.zst"
# Decompressed size limits of what an upstream's CEP-16 shards may be (an index of every package
# name of a subdir; all files of one name).
MAX_SHARD_INDEX = 256 * 1024 * 1024
MAX_SHARD = 128 * 1024 * 1024
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class RepodataFetch:
    """An upstream ``repodata.json`` spooled to a local file as it came (zstd-compressed for .zst).

    A big upstream (conda-forge's linux-64 is about 300 MB of JSON, 1.5M records) is never held in
    memory: ``records`` stream-parses the spooled file with ijson, decompressing on the fly.
    """

    subdir: str
    url: str
    path: Path | None = None  # the body as received; None when not modified or absent
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    missing: bool = False

    @property
    def compressed(self) -> bool:
        return self.url.endswith(".zst")

    @contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """The decompressed JSON as a binary stream."""
        assert self.path is not None
        with open(self.path, "rb") as fh:
            if self.compressed:
                with zstandard.ZstdDecompressor().stream_reader(fh, read_size=CHUNK) as reader:
                    yield reader  # type: ignore[misc]
            else:
                yield fh

    @property
    def content(self) -> bytes | None:
        """The whole decompressed JSON (small channels and tests; the mirror streams ``records``)."""
        if self.path is None:
            return None
        with self._corrupt_as_upstream_error(), self.open() as fh:
            return fh.read()

    @contextmanager
    def _corrupt_as_upstream_error(self) -> Iterator[None]:
        try:
            yield
        except zstandard.ZstdError as exc:
            raise UpstreamError(f"{redact_url(self.url)} is not valid zstd data",
                                "The upstream served a corrupt file; try again later",
                                code="upstream_corrupt") from exc
        except (ijson.JSONError, UnicodeDecodeError, ValueError) as exc:
            raise UpstreamError(f"{redact_url(self.url)} is not a conda repodata.json "
                                f"(not JSON: {exc})",
                                "Check that the source URL is the root of a conda channel",
                                code="upstream_corrupt") from exc

    def info(self) -> dict[str, Any]:
        """The ``info`` object (empty when absent); raises when the file is not a JSON object."""
        with self._corrupt_as_upstream_error():
            with self.open() as fh:
                first = next(iter(ijson.parse(fh)), None)
            if first is None or first[1] != "start_map":
                raise UpstreamError(f"{redact_url(self.url)} is not a conda repodata.json "
                                    "(not a JSON object)",
                                    "Check that the source URL is the root of a conda channel",
                                    code="upstream_corrupt")
            with self.open() as fh:
                for obj in ijson.items(fh, "info", use_float=True):
                    return obj if isinstance(obj, dict) else {}
        return {}

    def records(self, section: str) -> Iterator[tuple[str, Any]]:
        """(filename, record) of one section (``packages.conda`` or ``packages``), one at a time."""
        with self._corrupt_as_upstream_error(), self.open() as fh:
            # ijson joins prefixes with "." -- "packages.conda" is the top-level key of that name.
            yield from ijson.kvitems(fh, section, use_float=True)

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


@dataclass(frozen=True)
class Verified:
    sha256: str
    md5: str
    size: int


class CondaUpstream:
    """One upstream channel, e.g. ``https://conda.anaconda.org/conda-forge`` or a Taipan channel."""

    def __init__(self, source_root: str, *, proxy: str | None = None, timeout: float = 60.0,
                 retries: int = 4, backoff: float = 0.25,
                 sleep: Callable[[float], None] = time.sleep, egress: EgressPolicy | None = None) -> None:
        import httpx  # see the module docstring
        self.root = source_root.rstrip("/") + "/"
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._zst_missing = False
        # The egress policy (None: no checks, for library use): without a proxy every connection is
        # checked when it is opened, redirect hops included; behind one, every request's host.
        guard: dict[str, object] = {}
        if egress is not None and proxy:
            guard["event_hooks"] = {"request": [request_hook(egress)]}
        elif egress is not None:
            guard["transport"] = guarded_transport(egress)
        self.client = httpx.Client(
            proxy=proxy or None, timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            follow_redirects=True, headers={"User-Agent": f"taipan-mirror/{__version__}"},
            trust_env=not proxy and egress is None, **guard,  # type: ignore[arg-type]
        )

    def __enter__(self) -> CondaUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def url(self, path: str) -> str:
        return self.root + path.lstrip("/")

    def unmask(self, url: str) -> str:
        """A file URL stored without credentials, with this upstream's credentials again."""
        return unmask(url, self.root)

    # --- requests with retries ----------------------------------------------------------------

    @staticmethod
    def _describe(url: str) -> str:
        return redact_url(url) or ""

    @contextmanager
    def _request(self, method: str, url: str, headers: dict[str, str] | None = None,
                 ok: tuple[int, ...] = (200,)) -> Iterator[httpx.Response]:
        """Send with retries; yield a streaming response whose status is in ``ok`` or 404/304."""
        import httpx
        last = ""
        yielded = False
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff * 2 ** (attempt - 1))
            try:
                with self.client.stream(method, url, headers=headers) as resp:
                    if resp.status_code in RETRY_STATUSES:
                        last = f"HTTP {resp.status_code}"
                        log.warning("upstream %s answered %s (attempt %d)", self._describe(url),
                                    resp.status_code, attempt + 1)
                        continue
                    if resp.status_code in (401, 403):
                        raise UpstreamError(
                            f"The upstream refused access to {self._describe(url)} "
                            f"(HTTP {resp.status_code})",
                            "Put a token in the source URL (/t/<token>/) or fix the credentials",
                            code="upstream_unauthorized")
                    if resp.status_code not in ok and resp.status_code not in (304, 404):
                        raise UpstreamError(
                            f"Unexpected answer HTTP {resp.status_code} from {self._describe(url)}",
                            "Check that the source URL is a conda channel", code="upstream_error")
                    yielded = True
                    yield resp
                    return
            except httpx.TransportError as exc:
                if yielded:  # the caller was reading the body: retrying here cannot help it
                    raise UpstreamError(f"The transfer from {self._describe(url)} broke off: {exc}",
                                        "Try again; the next run resumes",
                                        code="upstream_unreachable") from exc
                last = f"{type(exc).__name__}: {exc}"
                log.warning("upstream %s failed: %s (attempt %d)", self._describe(url), last, attempt + 1)
        raise UpstreamError(
            f"The upstream {self._describe(url)} is unreachable after {self.retries + 1} attempts ({last})",
            "Check the source URL, the network and the proxy; the mirror will retry on its next run",
            code="upstream_unreachable")

    def get_bytes(self, path_or_url: str, headers: dict[str, str] | None = None) -> httpx.Response:
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        with self._request("GET", url, headers) as resp:
            resp.read()
            return resp

    # --- channel metadata -----------------------------------------------------------------------

    def subdirs(self) -> list[str]:
        """The channel's subdirs from channeldata.json, else by probing every known subdir."""
        resp = self.get_bytes("channeldata.json")
        if resp.status_code == 200:
            try:
                found = [s for s in resp.json().get("subdirs", []) if s in KNOWN_SUBDIRS]
            except ValueError:
                found = []
            if found:
                return sorted(set(found))
        found = []
        for subdir in KNOWN_SUBDIRS:
            with self._request("HEAD", self.url(f"{subdir}/repodata.json")) as head:
                if head.status_code == 200:
                    found.append(subdir)
        if not found:
            raise UpstreamError(f"No conda subdir found at {self._describe(self.root)}",
                                "Check that the source URL is the root of a conda channel "
                                "(it has noarch/repodata.json)", code="upstream_not_a_channel")
        return sorted(found)

    def fetch_repodata(self, subdir: str, *, etag: str | None = None, last_modified: str | None = None,
                       spool_dir: Path | None = None) -> RepodataFetch:
        """GET ``<subdir>/repodata.json.zst`` (or ``.json`` when there is no .zst), conditionally,
        streamed to a file in ``spool_dir`` (the system's temp dir by default): the caller parses
        it from there and calls ``discard()``."""
        import httpx
        headers = {"If-None-Match": etag} if etag else {}
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        names = ["repodata.json"] if self._zst_missing else ["repodata.json.zst", "repodata.json"]
        for name in names:
            url = self.url(f"{subdir}/{name}")
            with self._request("GET", url, headers) as resp:
                if resp.status_code == 404:
                    if name.endswith(".zst"):
                        self._zst_missing = True
                    continue
                tag, modified = resp.headers.get("etag"), resp.headers.get("last-modified")
                if resp.status_code == 304:
                    return RepodataFetch(subdir, url, None, etag=etag, last_modified=last_modified,
                                         not_modified=True)
                fd, tmp = tempfile.mkstemp(prefix="repodata-", suffix=".part", dir=spool_dir)
                try:
                    with os.fdopen(fd, "wb") as out:
                        for chunk in resp.iter_bytes(CHUNK):
                            out.write(chunk)
                except httpx.TransportError as exc:
                    remove_quietly(Path(tmp))
                    raise UpstreamError(f"The transfer from {self._describe(url)} broke off: {exc}",
                                        "Try again; the next run fetches it again",
                                        code="upstream_unreachable") from exc
                except BaseException:
                    remove_quietly(Path(tmp))
                    raise
            got = RepodataFetch(subdir, url, Path(tmp), etag=tag, last_modified=modified)
            if got.compressed:
                _check_zstd(got)
            return got
        return RepodataFetch(subdir, self.url(f"{subdir}/repodata.json"), None, missing=True)

    def shard_indexes(self, subdirs: list[str]) -> dict[str, ShardIndex] | None:
        """The CEP-16 shard index of each subdir; None when one has none (the caller fetches the whole
        repodata then)."""
        indexes = {}
        for subdir in subdirs:
            index = self._shard_index(subdir)
            if index is None:
                return None
            indexes[subdir] = index
        return indexes

    def fetch_shards(self, indexes: Mapping[str, ShardIndex], names: Iterable[str], *,
                     depends_on: DependsOn | None = None, spool_dir: Path | None = None,
                     check: Callable[[], None] | None = None) -> ShardFetch:
        """Only the records of ``names`` (and, with ``depends_on``, of every name their records depend
        on, transitively) from the shards ``indexes`` name, as one spooled repodata.json(.zst) per
        subdir, and every name that was looked up. ``depends_on(dependency)`` gives the package name a
        dependency string needs, or None; ``check()`` is called before each name (it raises to stop)."""
        out = {sd: _Assembly(sd, index, spool_dir) for sd, index in indexes.items()}
        done: dict[str, RepodataFetch] = {}
        try:
            todo = list(dict.fromkeys(names))
            seen = set(todo)
            while todo:
                if check is not None:
                    check()
                name = todo.pop()
                for assembly in out.values():
                    for rec in assembly.add(self._shard(assembly.index, name)):
                        if depends_on is not None:
                            needed = {depends_on(str(dep)) for dep in rec.get("depends") or []} - seen
                            needed.discard(None)
                            seen.update(needed)
                            todo.extend(n for n in needed if n is not None)
            for sd, assembly in out.items():
                done[sd] = assembly.finish()
            return ShardFetch(done, frozenset(seen))
        except BaseException:
            for got in done.values():
                got.discard()
            raise
        finally:
            for assembly in out.values():
                assembly.close()

    def _shard_index(self, subdir: str) -> ShardIndex | None:
        url = self.url(f"{subdir}/{SHARD_INDEX}")
        resp = self.get_bytes(url)
        if resp.status_code != 200:
            return None
        index = _unpack(resp.content, MAX_SHARD_INDEX, url)
        shards, info = (index.get("shards"), index.get("info") or {}) if isinstance(index, dict) else (None, None)
        if not isinstance(shards, dict) or not isinstance(info, dict) or not all(
                isinstance(k, str) and isinstance(v, bytes) and len(v) == 32 for k, v in shards.items()):
            raise UpstreamError(f"{redact_url(url)} is not a CEP-16 shard index",
                                "The upstream served a corrupt file; try again later", code="upstream_corrupt")
        base = info.get("shards_base_url") if isinstance(info.get("shards_base_url"), str) else ""
        return ShardIndex(url, urljoin(url, base or "./shards/"), shards,
                          info.get("base_url") if isinstance(info.get("base_url"), str) else "")

    def _shard(self, index: ShardIndex, name: str) -> dict[str, Any]:
        """One name's shard (empty when the index does not name it), its digests checked."""
        digest = index.shards.get(name)
        if digest is None:
            return {}
        url = f"{index.shards_url.rstrip('/')}/{digest.hex()}.msgpack.zst"
        resp = self.get_bytes(url)
        if resp.status_code != 200 or hashlib.sha256(resp.content).digest() != digest:
            raise UpstreamError(f"The shard {redact_url(url)} is missing or does not match its index",
                                "The upstream's shard index and shards disagree; try again later",
                                code="upstream_corrupt")
        shard = _unpack(resp.content, MAX_SHARD, url)
        return shard if isinstance(shard, dict) else {}

    # --- files ----------------------------------------------------------------------------------

    def file_url(self, subdir: str, filename: str, base_url: str | None = None) -> str:
        if base_url:  # repodata info.base_url (CEP-15): files live elsewhere
            base = base_url if "://" in base_url else self.url(f"{subdir}/{base_url}")
            return base.rstrip("/") + "/" + filename
        return self.url(f"{subdir}/{filename}")

    def download(self, url: str, dest: Path, *, sha256: str | None, size: int | None,
                 md5: str | None = None, on_bytes: Callable[[int], None] | None = None) -> Verified:
        """Download ``url`` to ``dest``, resuming a partial ``dest``; verify size and sha256 (md5 when
        the index has no sha256)."""
        import httpx
        for attempt in range(2):
            have = dest.stat().st_size if dest.exists() else 0
            if size is not None and have > size:
                dest.unlink()
                have = 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            sha, md5_h = hashlib.sha256(), hashlib.md5()
            with self._request("GET", url, headers, ok=(200, 206)) as resp:
                if resp.status_code == 404:
                    raise UpstreamError(f"{self._describe(url)} is gone upstream (HTTP 404)",
                                        "The upstream index lists a file it does not have",
                                        code="upstream_missing_file")
                mode = "ab" if resp.status_code == 206 and have else "wb"
                if mode == "ab":
                    _hash_existing(dest, sha, md5_h)
                with open(dest, mode) as out:
                    try:
                        for chunk in resp.iter_bytes(CHUNK):
                            out.write(chunk)
                            sha.update(chunk)
                            md5_h.update(chunk)
                            if on_bytes:
                                on_bytes(len(chunk))
                    except httpx.TransportError as exc:
                        raise UpstreamError(f"Download of {self._describe(url)} broke off: {exc}",
                                            "The next run resumes where it stopped",
                                            code="upstream_unreachable") from exc
            got = Verified(sha.hexdigest(), md5_h.hexdigest(), dest.stat().st_size)
            try:
                check(got, sha256, size, url, md5)
                return got
            except UpstreamError:
                dest.unlink(missing_ok=True)  # a bad partial file: start over once
                if attempt or not have:
                    raise
        raise AssertionError("unreachable")

    def stream_to(self, url: str, sink: BinaryIO, *, sha256: str | None,
                  size: int | None, md5: str | None = None) -> Iterator[bytes]:
        """Yield the file's bytes while writing them to ``sink``; raise if they are bad.

        The last chunk is held back until the size and sha256 (or md5) are checked: a client must never
        receive a complete body (every byte of its Content-Length) of a file that does not match
        its index, so a bad file ends in a broken transfer, or, when it fits in one chunk, in an
        error before any byte is sent.
        """
        import httpx
        md5_hex = md5
        sha, md5_h, n = hashlib.sha256(), hashlib.md5(), 0
        held: bytes | None = None
        with self._request("GET", url) as resp:
            if resp.status_code == 404:
                raise UpstreamError(f"{self._describe(url)} is gone upstream (HTTP 404)",
                                    "Run the mirror again to refresh its index", code="upstream_missing_file")
            try:
                for chunk in resp.iter_bytes(CHUNK):
                    if size is not None and n + len(chunk) > size:
                        raise UpstreamError(f"{url.rsplit('/', 1)[-1]} is larger than the {size} bytes "
                                            "its index says", "The upstream file and its index disagree",
                                            code="upstream_checksum")
                    sink.write(chunk)
                    sha.update(chunk)
                    md5_h.update(chunk)
                    n += len(chunk)
                    if held is not None:
                        yield held
                    held = chunk
            except httpx.TransportError as exc:
                raise UpstreamError(f"Download of {self._describe(url)} broke off: {exc}",
                                    "Try again", code="upstream_unreachable") from exc
        check(Verified(sha.hexdigest(), md5_h.hexdigest(), n), sha256, size, url, md5_hex)
        if held is not None:
            yield held


def check(got: Verified, sha256: str | None, size: int | None, url: str, md5: str | None = None) -> None:
    """Size and sha256 against the index; md5 too when the index (an old channel) has no sha256."""
    if size is not None and got.size != size:
        raise UpstreamError(f"{url.rsplit('/', 1)[-1]} has {got.size} bytes, the index says {size}",
                            "The upstream file and its index disagree", code="upstream_checksum")
    if sha256 and got.sha256 != sha256.lower():
        raise UpstreamError(f"{url.rsplit('/', 1)[-1]} has sha256 {got.sha256}, the index says {sha256}",
                            "The upstream file and its index disagree", code="upstream_checksum")
    if not sha256 and md5 and got.md5 != md5.lower():
        raise UpstreamError(f"{url.rsplit('/', 1)[-1]} has md5 {got.md5}, the index says {md5}",
                            "The upstream file and its index disagree", code="upstream_checksum")


def _check_zstd(got: RepodataFetch) -> None:
    """Fail at fetch time (as before streaming) when the .zst is not a zstd frame at all."""
    assert got.path is not None
    try:
        with got.open() as fh:
            fh.read(1)
    except zstandard.ZstdError as exc:
        got.discard()
        raise UpstreamError(f"{redact_url(got.url)} is not valid zstd data",
                            "The upstream served a corrupt file; try again later",
                            code="upstream_corrupt") from exc


def _hash_existing(path: Path, *hashes: hashlib._Hash) -> None:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            for h in hashes:
                h.update(chunk)


def partial_path(tmpdir: Path, sha256: str | None, filename: str) -> Path:
    """Where a download in progress lives, stable across runs so a killed sync resumes it."""
    return tmpdir / f"mirror-{sha256 or hashlib.sha256(filename.encode()).hexdigest()}.part"


def remove_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


@dataclass(frozen=True)
class ShardIndex:
    url: str
    shards_url: str  # where the shards are: <shards_url>/<sha256>.msgpack.zst
    shards: dict[str, bytes]  # package name -> sha256 of its shard
    base_url: str  # where the package files are (CEP-15 base_url), "" for the subdir


@dataclass(frozen=True)
class ShardFetch:
    fetched: dict[str, RepodataFetch]  # subdir -> its records from the shards, as a repodata file
    names: frozenset[str]  # every name looked up (found in a subdir's index or not)


def shards_digest(indexes: Mapping[str, ShardIndex], names: Iterable[str]) -> str:
    """One digest of the shards of ``names`` in every subdir (each shard's sha256, or its absence) and
    of where shards and files are. A run that looked up ``names`` and a later one whose indexes give
    the same digest read the same records: a dependency closure grows only through the records of the
    names already looked up, so it is the same too."""
    h = hashlib.sha256()
    ordered = sorted(set(names))
    for subdir in sorted(indexes):
        index = indexes[subdir]
        h.update(orjson.dumps([subdir, index.shards_url, index.base_url]))
        for name in ordered:
            digest = index.shards.get(name)
            h.update(orjson.dumps([name, digest.hex() if digest is not None else None]))
    return h.hexdigest()


DependsOn = Callable[[str], str | None]


def _unpack(data: bytes, limit: int, url: str) -> Any:
    """msgpack in a zstd frame, at most ``limit`` bytes once decompressed."""
    try:
        with zstandard.ZstdDecompressor().stream_reader(data) as reader:
            raw = reader.read(limit + 1)
        if len(raw) > limit:
            raise UpstreamError(f"{redact_url(url)} is larger than {limit} bytes decompressed",
                                "The upstream serves an unreasonably large shard", code="upstream_corrupt")
        return msgpack.unpackb(raw, raw=False, strict_map_key=False)
    except (zstandard.ZstdError, ValueError, msgpack.UnpackException) as exc:
        raise UpstreamError(f"{redact_url(url)} is not zstd-compressed msgpack ({exc})",
                            "The upstream served a corrupt file; try again later", code="upstream_corrupt") from exc


class _Assembly:
    """A subdir's records from shards, spooled into a repodata.json.zst that ``RepodataFetch`` reads:
    the members of each section go to a file of their own, joined when done."""

    SECTIONS = ("packages", "packages.conda")

    def __init__(self, subdir: str, index: ShardIndex, spool_dir: Path | None) -> None:
        self.subdir, self.index, self.spool_dir = subdir, index, spool_dir
        self.parts = {s: tempfile.TemporaryFile(prefix="shards-", dir=spool_dir) for s in self.SECTIONS}
        self.counts = dict.fromkeys(self.SECTIONS, 0)

    def add(self, shard: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Spool a shard's records; yield each (hashes as hex, as in repodata.json)."""
        for section in self.SECTIONS:
            records = shard.get(section)
            for fn, rec in records.items() if isinstance(records, dict) else ():
                if not isinstance(fn, str) or not isinstance(rec, dict):
                    continue
                rec = {k: v.hex() if isinstance(v, bytes) else v for k, v in rec.items()}
                self.parts[section].write((b"," if self.counts[section] else b"") + orjson.dumps(fn) + b":"
                                          + orjson.dumps(rec))
                self.counts[section] += 1
                yield rec

    def finish(self) -> RepodataFetch:
        fd, tmp = tempfile.mkstemp(prefix="repodata-shards-", suffix=".part", dir=self.spool_dir)
        info = {"subdir": self.subdir, **({"base_url": self.index.base_url} if self.index.base_url else {})}
        with os.fdopen(fd, "wb") as out, zstandard.ZstdCompressor(level=1).stream_writer(out) as zst:
            zst.write(b'{"info":' + orjson.dumps(info))
            for section, part in self.parts.items():
                zst.write(b"," + orjson.dumps(section) + b":{")
                part.seek(0)
                while chunk := part.read(CHUNK):
                    zst.write(chunk)
                zst.write(b"}")
            zst.write(b',"repodata_version":1}')
        return RepodataFetch(self.subdir, self.index.url, Path(tmp))

    def close(self) -> None:
        for part in self.parts.values():
            part.close()
