"""Credentials in upstream URLs: find them, show URLs without them, and scrub them from texts.

An upstream URL may carry secrets in three places: ``user:password@`` (or a token as the user
name), a ``/t/<token>/`` path segment (anaconda.org and Taipan channels), and query values such
as ``?token=``. Mirrors store such URLs encrypted and show only ``redact_url`` forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
_TOKEN_SEGMENT = re.compile(r"(?<=/t/)[^/?#]+")


def _mask_query(query: str) -> str:
    if not query:
        return query
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, MASK if v else v) for k, v in pairs], safe="*")


def redact_url(url: str | None) -> str | None:
    """``url`` with every secret replaced by ``***``; it keeps its shape, so a reader can see that
    credentials are set (and where), never what they are."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        netloc = (f"{MASK}:{MASK}@" if ":" in userinfo else f"{MASK}@") + host
    path = _TOKEN_SEGMENT.sub(MASK, parts.path)
    return urlunsplit((parts.scheme, netloc, path, _mask_query(parts.query), ""))


def has_credentials(url: str | None) -> bool:
    return bool(url) and redact_url(url) != url


def secrets_of(url: str | None) -> list[str]:
    """The secret strings in ``url`` (raw and percent-decoded), for scrubbing texts."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        found += [p for p in userinfo.split(":", 1) if p]
    found += _TOKEN_SEGMENT.findall(parts.path)
    found += [v for _, v in parse_qsl(parts.query, keep_blank_values=True) if v]
    found += [raw for raw in re.findall(r"=([^&#]+)", parts.query)]
    out = set(found) | {unquote(s) for s in found}
    return sorted((s for s in out if len(s) >= 3), key=len, reverse=True)


def scrub(text: str | None, secrets: Iterable[str]) -> str | None:
    """``text`` without any of ``secrets`` (and without credentials of URLs it quotes)."""
    if not text:
        return text
    for secret in secrets:
        text = text.replace(secret, MASK)
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)) or "", text)


_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)]+")


def unmask(url: str, real_root: str | None) -> str:
    """Put the credentials of ``real_root`` back into ``url``, a masked URL under that root."""
    if not real_root:
        return url
    root = real_root.rstrip("/")
    shown = (redact_url(root) or root).rstrip("/")
    if shown != root and (url == shown or url.startswith(shown + "/")):
        return root + url[len(shown):]
    return url
