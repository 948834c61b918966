"""Named exit codes: scripts branch on these, so the numbers never change meaning."""

from __future__ import annotations

from enum import IntEnum

from taipan.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    TaipanError,
    TooLarge,
    TooManyRequests,
    Unauthenticated,
)


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2  # bad command line or bad input (argparse uses 2 too)
    UNAUTHORIZED = 3
    NOT_FOUND = 4
    CONFLICT = 5
    FORBIDDEN = 6
    NOT_CONFIGURED = 7
    SERVER_ERROR = 8
    CONNECTION_ERROR = 9
    TOO_LARGE = 10
    TOO_MANY_REQUESTS = 11
    INTERRUPTED = 130


_BY_CLASS: list[tuple[type[TaipanError], ExitCode]] = [
    (Unauthenticated, ExitCode.UNAUTHORIZED), (Forbidden, ExitCode.FORBIDDEN),
    (NotFound, ExitCode.NOT_FOUND), (Conflict, ExitCode.CONFLICT), (InvalidInput, ExitCode.USAGE),
    (TooLarge, ExitCode.TOO_LARGE), (TooManyRequests, ExitCode.TOO_MANY_REQUESTS),
]
_BY_CODE = {"no_site": ExitCode.NOT_CONFIGURED, "server_error": ExitCode.SERVER_ERROR,
            "connection_error": ExitCode.CONNECTION_ERROR, "timeout": ExitCode.CONNECTION_ERROR,
            "not_logged_in": ExitCode.UNAUTHORIZED}


def exit_code_for(err: TaipanError) -> ExitCode:
    for cls, code in _BY_CLASS:
        if isinstance(err, cls):
            return code
    if err.code in _BY_CODE:
        return _BY_CODE[err.code]
    return ExitCode.SERVER_ERROR if err.status >= 500 else ExitCode.ERROR
