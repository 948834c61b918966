"""Map domain errors to HTTP: every error body is {code, message, hint} (and detail, for FastAPI clients)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException

from taipan.errors import TaipanError, TooManyRequests
from taipan.web.openapi import allowed_methods


def error_response(status: int, code: str, message: str, hint: str = "",
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"code": code, "message": message, "hint": hint, "detail": message}
    return JSONResponse(body, status_code=status, headers=headers)


def taipan_error_response(exc: TaipanError) -> JSONResponse:
    """The one mapping of a domain error to HTTP, for the API and for package serving alike."""
    headers = {}
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="taipan"'
    return error_response(exc.status, exc.code, exc.message, exc.hint, headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(TaipanError)
    async def _taipan(_: Request, exc: TaipanError) -> JSONResponse:
        return taipan_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return error_response(422, "invalid_request", f"Invalid request: {where}: {first.get('msg', '')}",
                              "Check the request against the API documentation at /docs")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        hint = "Check the URL" if exc.status_code in (404, 405) else ""
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            # Every method of the resource (FastAPI has one route per method, and the router names
            # only the first route's in its Allow header).
            try:
                headers["Allow"] = allowed_methods(request.app, request.url.path) or headers.get("Allow", "")
            except Exception:  # the schema cannot be built: the router's own Allow is still true
                pass
        return error_response(exc.status_code, code, str(exc.detail), hint, headers or None)

    @app.exception_handler(IntegrityError)
    async def _conflict(_: Request, exc: IntegrityError) -> JSONResponse:
        # A unique key taken by a concurrent request between our check and our write; the
        # transaction was not committed (the session rolls back when the request ends).
        return error_response(409, "conflict", "The request conflicts with a concurrent change",
                              "Look at the current state and retry if it still applies")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        # Logged by the server; the client gets the same body shape as every other error.
        return error_response(500, "internal_error", "The server failed to handle the request",
                              "Retry later; if it keeps failing, tell an admin (the server log has details)")
