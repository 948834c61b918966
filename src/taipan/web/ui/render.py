"""Rendering pages: the Jinja2 environment, cookies and headers every UI response gets, and error pages.

Errors from services reach the visitor as a page with the error's message, hint and status, never
as the API's JSON or a traceback: UIRoute catches them around every UI handler.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import Response

from taipan import __version__
from taipan.domain.permissions import ANONYMOUS
from taipan.errors import InvalidInput, TaipanError, TooManyRequests
from taipan.web.ui.session import COOKIE_PATH, CSRF_COOKIE, SESSION_COOKIE, csrf_token

TEMPLATES = Path(__file__).parent / "templates"
FLASH_COOKIE = "taipan_flash"
# Inline <style> only, no scripts at all; forms may only post back to us; no framing (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Pages show private channel data and, once, token secrets: keep them out of shared caches.
    "Cache-Control": "no-store",
}


def filesize(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.strftime("%Y-%m-%d %H:%M UTC")


def details(data: dict[str, Any]) -> list[tuple[str, str]]:
    """An event's data as short label/value pairs; digests are left to the package page."""
    out = []
    for key, value in sorted((data or {}).items()):
        if key in ("sha256", "md5"):
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        out.append((key, text if len(text) <= 200 else text[:199] + "…"))
    return out


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["filesize"] = filesize
    env.filters["when"] = when
    env.filters["details"] = details
    return env


def finish(request: Request, response: Response) -> Response:
    """Apply the cookie bookkeeping the request accumulated, and the security headers."""
    secure = request.url.scheme == "https"
    if getattr(request.state, "drop_session", False):
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=secure, httponly=True)
    if token := getattr(request.state, "new_csrf", None):
        response.set_cookie(CSRF_COOKIE, token, path=COOKIE_PATH, secure=secure, httponly=True,
                            samesite="lax")
    response.headers.update(SECURITY_HEADERS)
    return response


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    flash = request.cookies.get(FLASH_COOKIE)
    context.setdefault("notice", unquote(flash) if flash else None)
    context.setdefault("error", None)
    page = environment().get_template(template).render(
        visitor=getattr(request.state, "principal", ANONYMOUS), csrf=csrf_token(request),
        version=__version__, path=request.url.path, **context)
    response = HTMLResponse(page, status_code=status)
    if flash:  # shown once
        response.delete_cookie(FLASH_COOKIE, path=COOKIE_PATH)
    return finish(request, response)  # type: ignore[return-value]


def redirect(request: Request, url: str, notice: str | None = None) -> Response:
    """303 after a successful form post (so reloading does not post again), with a one-time notice."""
    response = RedirectResponse(url, status_code=303)
    if notice:
        response.set_cookie(FLASH_COOKIE, quote(notice), path=COOKIE_PATH, httponly=True, samesite="lax",
                            max_age=60)
    return finish(request, response)


def back_link(request: Request) -> str | None:
    """Where the failed form was: the same-site page that referred here, if any."""
    parts = urlsplit(request.headers.get("referer", ""))
    if parts.netloc == request.headers.get("host") and parts.path.startswith("/ui/"):
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return None


def error_page(request: Request, exc: TaipanError) -> HTMLResponse:
    back = back_link(request) if request.method == "POST" else None
    login_next = request.url.path if request.method == "GET" else (back or "/ui/channels")
    response = render(request, "error.html", status=exc.status, error=exc, back=back, next=login_next)
    if isinstance(exc, TooManyRequests):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


class UIRoute(APIRoute):
    """An APIRoute whose errors are rendered as pages instead of the API's JSON bodies."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except TaipanError as exc:
                return error_page(request, exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                field = ".".join(str(x) for x in first.get("loc", ())[1:])
                error = InvalidInput(f"Invalid value for {field!r}: {first.get('msg', '')}",
                                     "Correct the form or the address and try again", code="invalid_request")
                error.status = 422
                return error_page(request, error)

        return guarded
