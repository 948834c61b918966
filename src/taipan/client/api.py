"""TaipanClient: one method per REST endpoint the `conda-repo` CLI uses (wire protocol doc §3).

Two credentials exist. The opaque API token goes in ``X-Auth`` on every call; the short-lived
session token from ``/auth/login`` goes in ``Authorization: Bearer`` and only to the
``/account/tokens*`` and ``/account/scopes`` endpoints, as conda-repo-cli does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

from taipan import __version__
from taipan.client.errors import connection_error, error_from_response
from taipan.domain.detect import PACKAGE_TYPES
from taipan.domain.names import split_channel_path
from taipan.errors import TaipanError

log = logging.getLogger("taipan.client")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, read=300.0)
# Multipart `filetype` values, keyed by the CLI's --package-type names (those conda-repo-cli sends).
UPLOAD_FILETYPES: dict[str, str] = PACKAGE_TYPES

Json = dict[str, Any]


class _ProgressReader:
    """Wraps a binary file so httpx streams it in chunks while we count the bytes sent."""

    def __init__(self, fh: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._fh = fh
        self._on_read = on_read

    def read(self, size: int = -1) -> bytes:
        chunk = self._fh.read(size)
        self._on_read(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._fh.seek(offset, whence)

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        # httpx sizes the body from fstat(fileno) and so sends Content-Length, not chunked encoding.
        return self._fh.fileno()


def channel_path_url(path: str) -> str:
    """'ch' -> '/channels/ch'; 'ch/sub' -> '/channels/ch/subchannels/sub' (names are validated)."""
    channel, sub = split_channel_path(path)
    return f"/channels/{channel}" + (f"/subchannels/{sub}" if sub else "")


class TaipanClient:
    """A thin, synchronous API client. ``base_url`` is the site URL and ends in ``/api``."""

    def __init__(self, base_url: str, token: str | None = None, verify: bool | str = True,
                 *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.session_token: str | None = None
        self._http = httpx.Client(base_url=self.base_url, verify=verify, timeout=DEFAULT_TIMEOUT,
                                  headers={"User-Agent": f"conda-repo/{__version__} (taipan)"},
                                  transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TaipanClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _headers(self, bearer: bool) -> dict[str, str]:
        if bearer and self.session_token:
            return {"Authorization": f"Bearer {self.session_token}"}
        return {"X-Auth": self.token} if self.token else {}

    def request(self, method: str, path: str, *, bearer: bool = False, **kw: Any) -> httpx.Response:
        headers = {**self._headers(bearer), **kw.pop("headers", {})}
        url = path if path.startswith("http") else self.base_url + path
        log.debug("%s %s", method, url)
        try:
            resp = self._http.request(method, url, headers=headers, **kw)
        except httpx.HTTPError as exc:
            raise connection_error(self.base_url, exc) from exc
        log.debug("-> %s", resp.status_code)
        if resp.status_code >= 400:
            raise error_from_response(resp)
        return resp

    def request_json(self, method: str, path: str, **kw: Any) -> Any:
        """``request`` and decode the JSON answer (None for 204 or an empty body)."""
        resp = self.request(method, path, **kw)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    # -- auth and account -------------------------------------------------------------------
    def login(self, username: str, password: str) -> Json:
        return self.request_json("POST", "/auth/login", json={"username": username, "password": password})

    def account(self) -> Json:
        return self.request_json("GET", "/account")

    def account_channels(self) -> Json:
        return self.request_json("GET", "/account/channels")

    def token_info(self) -> Json | None:
        return self.request_json("GET", "/account/token-info")

    def scopes(self) -> list[str]:
        return list(self.request_json("GET", "/account/scopes", bearer=True).get("scopes", []))

    def tokens(self) -> list[Json]:
        return list(self.request_json("GET", "/account/tokens", bearer=True).get("items", []))

    def create_token(self, name: str, expires_at: str, scopes: list[str],
                     resources: list[Json] | None = None) -> Json:
        body: Json = {"name": name, "expires_at": expires_at, "scopes": scopes}
        if resources:
            body["resources"] = resources
        return self.request_json("POST", "/account/tokens", bearer=True, json=body)

    def rotate_token(self, token_id: str) -> Json:
        """conda-repo-cli's "refresh": a new secret and a renewed lifetime; earlier secrets stay valid."""
        return self.request_json("PUT", f"/account/tokens/{quote(token_id, safe='')}", bearer=True, json={})

    def delete_token(self, token_id: str) -> None:
        self.request_json("DELETE", f"/account/tokens/{quote(token_id, safe='')}", bearer=True)

    def logout(self) -> None:
        """Revoke the API token this client holds, on the server."""
        self.request_json("POST", "/logout")

    # -- server settings (admins) ----------------------------------------------------------------
    def system_settings(self) -> Json:
        return self.request_json("GET", "/system/settings")

    def update_system_settings(self, settings: Json) -> Json:
        return self.request_json("PUT", "/system/settings", json=settings)

    # -- channels ---------------------------------------------------------------------------
    def channels(self, offset: int = 0, limit: int | None = None) -> Json:
        """Every channel the caller can reach (public ones too); without ``limit``, all of them."""
        params: Json = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        return self.request_json("GET", "/channels", params=params)

    def create_channel(self, path: str) -> Json:
        channel, sub = split_channel_path(path)
        if sub is None:
            return self.request_json("POST", "/channels", json={"name": channel})
        return self.request_json("POST", f"/channels/{channel}/subchannels", json={"name": sub})

    def channel(self, path: str) -> Json:
        return self.request_json("GET", channel_path_url(path))

    def update_channel(self, path: str, changes: Json) -> Json | None:
        return self.request_json("PUT", channel_path_url(path), json=changes)

    def delete_channel(self, path: str) -> None:
        self.request_json("DELETE", channel_path_url(path))

    def subchannels(self, channel: str) -> Json:
        return self.request_json("GET", f"{channel_path_url(channel)}/subchannels")

    def history(self, path: str, offset: int = 0, limit: int = 50) -> Json:
        return self.request_json("GET", f"{channel_path_url(path)}/history",
                          params={"offset": offset, "limit": limit})

    # -- artifacts --------------------------------------------------------------------------
    def artifacts(self, path: str, offset: int = 0, limit: int = 50) -> Json:
        return self.request_json("GET", f"{channel_path_url(path)}/artifacts",
                          params={"offset": offset, "limit": limit})

    def files(self, path: str, family: str, package: str, offset: int = 0,
              limit: int | None = None) -> Json:
        params: Json = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        url = f"{channel_path_url(path)}/artifacts/{quote(family, safe='')}/{quote(package, safe='')}/files"
        return self.request_json("GET", url, params=params)

    def upload(self, channel_path: str, file: Path, filetype: str,
               on_progress: Callable[[int], None] | None = None) -> Json | None:
        channel, sub = split_channel_path(channel_path)
        # conda-repo-cli posts subchannel uploads to /channels/<ch>/<sub>/artifacts; so do we.
        url = f"/channels/{channel}" + (f"/{sub}" if sub else "") + "/artifacts"
        size = file.stat().st_size
        with file.open("rb") as fh:
            body: IO[bytes] = fh if on_progress is None else _ProgressReader(fh, on_progress)  # type: ignore[assignment]
            return self.request_json("POST", url, files={"content": (file.name, body, "application/octet-stream")},
                              data={"filetype": filetype, "size": str(size)})

    def bulk(self, path: str, action: str, items: list[Json], target: str | None = None) -> Json | None:
        body: Json = {"action": action, "items": items}
        if target:
            channel, sub = split_channel_path(target)
            body["target_channel"] = channel
            if sub:
                body["target_subchannel"] = sub
        return self.request_json("PUT", f"{channel_path_url(path)}/artifacts/bulk", json=body)

    def yank(self, path: str, family: str, package: str, *, yanked: bool, reason: str = "",
             version: str | None = None, ckeys: list[str] | None = None) -> Json:
        body: Json = {"yanked": yanked, "reason": reason, "version": version, "ckeys": ckeys}
        url = f"{channel_path_url(path)}/artifacts/{quote(family, safe='')}/{quote(package, safe='')}/yank"
        return self.request_json("PUT", url, json=body)

    def sbom(self, path: str, ckey: str, fmt: str | None = None) -> tuple[str | None, bytes]:
        """The SBOM of the file ``ckey`` of a channel: (file name from Content-Disposition, bytes)."""
        params = {"sbom": "download", **({"format": fmt} if fmt else {})}
        resp = self.request("GET", f"/repo/{quote(path, safe='/')}/{quote(ckey, safe='/')}", params=params)
        return disposition_filename(resp.headers.get("content-disposition")), resp.content

    def stream_to(self, method: str, path: str, target: Path, **kw: Any) -> httpx.Response:
        """Stream an answer into ``target`` (written beside it, then renamed); returns the response."""
        headers = {**self._headers(False), **kw.pop("headers", {})}
        url = path if path.startswith("http") else self.base_url + path
        partial = target.with_name(target.name + ".part")
        try:
            for _hop in range(3):
                with self._http.stream(method, url, headers=headers, **kw) as resp:
                    if resp.status_code in (301, 302, 303, 307, 308) and resp.headers.get("location"):
                        # An object store's signed URL: followed without our credentials.
                        url, headers, method, kw = str(resp.url.join(resp.headers["location"])), {}, "GET", {}
                        continue
                    if resp.status_code >= 400:
                        resp.read()
                        raise error_from_response(resp)
                    with partial.open("wb") as out:
                        for chunk in resp.iter_bytes():
                            out.write(chunk)
                    break
            else:
                raise TaipanError("Too many redirects", "Check the server's blob store settings",
                                  code="too_many_redirects")
        except httpx.HTTPError as exc:
            partial.unlink(missing_ok=True)
            raise connection_error(self.base_url, exc) from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return resp

    def search(self, query: str, offset: int = 0, limit: int = 50, sort: str | None = None,
               family: str | None = None) -> Json:
        params: Json = {"q": query, "offset": offset, "limit": limit}
        if sort:
            params["sort"] = sort
        if family:
            params["family"] = family
        return self.request_json("GET", "/artifacts", params=params)

    # -- CVEs -------------------------------------------------------------------------------
    def cves(self, offset: int = 0, limit: int = 50, **filters: Any) -> Json:
        params: Json = {"offset": offset, "limit": limit}
        params.update({k: v for k, v in filters.items() if v is not None})
        return self.request_json("GET", "/cves", params=params)

    def cve(self, cve_id: str) -> Json:
        return self.request_json("GET", f"/cves/{quote(cve_id, safe='')}")

    def cve_files(self, cve_id: str, offset: int = 0, limit: int = 50) -> Json:
        return self.request_json("GET", f"/cves/{quote(cve_id, safe='')}/files",
                                 params={"offset": offset, "limit": limit})

    def curate_cve(self, cve_id: str, status: str, note: str = "") -> Json:
        return self.request_json("PUT", f"/cves/{quote(cve_id, safe='')}", json={"status": status, "note": note})


def disposition_filename(header: str | None) -> str | None:
    """The bare file name of a Content-Disposition header (never a path), or None."""
    if not header:
        return None
    from email.message import Message

    msg = Message()
    msg["content-disposition"] = header
    name = msg.get_filename()
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name not in ("", ".", "..") else None


def probe(url: str, verify: bool | str = True, timeout: float = 5.0) -> bool:
    """Does a Taipan-like API answer at ``url`` (any HTTP answer below 500 counts)?"""
    try:
        resp = httpx.get(url.rstrip("/") + "/channels", verify=verify, timeout=timeout)
    except httpx.HTTPError as exc:
        log.debug("probe %s failed: %s", url, exc)
        return False
    return resp.status_code < 500
