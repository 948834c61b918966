"""Errors shared by the server and the client.

Every failure a user can cause carries a stable ``code`` (for scripts), a ``message`` (what went
wrong) and a ``hint`` (what to do about it). HTTP statuses and CLI exit codes are mapped from the
code at the edges only.
"""

from __future__ import annotations


class TaipanError(Exception):
    """Base error: ``code`` is stable, ``message`` says what happened, ``hint`` what to do."""

    code = "error"
    status = 400

    def __init__(self, message: str, hint: str = "", *, code: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidInput(TaipanError):
    code = "invalid_input"
    status = 400


class Unauthenticated(TaipanError):
    code = "unauthenticated"
    status = 401


class Forbidden(TaipanError):
    code = "forbidden"
    status = 403


class NotFound(TaipanError):
    code = "not_found"
    status = 404


class Conflict(TaipanError):
    code = "conflict"
    status = 409


class TooLarge(TaipanError):
    code = "too_large"
    status = 413


class TooManyRequests(TaipanError):
    code = "too_many_requests"
    status = 429

    def __init__(self, message: str, hint: str = "", *, retry_after: int = 1, **kw: object) -> None:
        super().__init__(message, hint, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class ServiceUnavailable(TooManyRequests):
    """The server is busy preparing what was asked for; the client should retry (with Retry-After)."""

    code = "unavailable"
    status = 503


class ChannelFrozen(TaipanError):
    code = "channel_frozen"
    status = 400


class UpstreamError(TaipanError):
    code = "upstream_error"
    status = 502
