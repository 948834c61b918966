"""HTTP answers -> ``taipan.errors`` exceptions, so the CLI reports every failure the same way."""

from __future__ import annotations

import httpx

from taipan.errors import (
    ChannelFrozen,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TaipanError,
    TooLarge,
    TooManyRequests,
    Unauthenticated,
)

_BY_STATUS: dict[int, type[TaipanError]] = {
    400: InvalidInput, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: TooLarge, 422: InvalidInput, 429: TooManyRequests,
}
_DEFAULT_HINTS: dict[int, str] = {
    401: "Sign in with `conda-repo login`",
    403: "Ask the channel owner or an administrator for access",
    404: "Check the name; `conda-repo channel --list` shows your channels",
    413: "The file is larger than the server accepts",
    429: "Wait a moment and try again",
}


def _detail_text(detail: object) -> str:
    # FastAPI's own validation errors come as {"detail": [{"loc": [...], "msg": ...}]}.
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def error_from_response(resp: httpx.Response) -> TaipanError:
    """Build the exception for an error answer: the server's JSON ``{code, message, hint}``."""
    status = resp.status_code
    body: object = None
    try:
        body = resp.json()
    except ValueError:
        pass
    code = message = hint = None
    if isinstance(body, dict):
        code, message, hint = body.get("code"), body.get("message"), body.get("hint")
        if message is None and "detail" in body:
            message = _detail_text(body["detail"])
    if status in (404, 405) and message in (None, "Not Found", "Method Not Allowed") and \
            code in (None, "not_found", "method_not_allowed"):
        # No such route at all (not a missing channel or package): usually a site URL without /api.
        return NotFound(f"The server has no API endpoint {resp.request.method} {resp.request.url.path}",
                        "Check the site URL: it must be the API base ending in /api, e.g. "
                        "https://server.example.com/api (`conda-repo config --show`)",
                        code="no_such_endpoint", status=status)
    if not message:
        text = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else ""
        message = f"The server answered {status} {resp.reason_phrase}" + (f": {text}" if text else "")
    if status >= 500:
        return TaipanError(message, hint or f"The server at {resp.request.url.host} failed; check its logs "
                           "or try again later", code=code or "server_error", status=status)
    cls = ChannelFrozen if code == ChannelFrozen.code else _BY_STATUS.get(status, TaipanError)
    err = cls(str(message), str(hint or _DEFAULT_HINTS.get(status, "")), code=code, status=status)
    if isinstance(err, TooManyRequests):
        err.retry_after = int(resp.headers.get("Retry-After", "1") or 1)
    return err


def connection_error(base_url: str, exc: httpx.HTTPError) -> TaipanError:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return TaipanError(f"The server at {base_url} did not answer in time", "Try again; check the network",
                           code="timeout", status=0)
    hint = ("Check the site URL (`conda-repo config --show`) and that the server is running; "
            "use -k/--insecure for a self-signed certificate")
    return TaipanError(f"Could not reach {base_url}: {reason}", hint, code="connection_error", status=0)
