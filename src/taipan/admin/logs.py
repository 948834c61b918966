"""Logging for `taipan serve`: uvicorn's configuration, with secrets redacted from every line.

conda and pip put API tokens into URLs (``/t/<token>/``), which the access log would otherwise
write in clear; a filter on every handler rewrites them (and URL passwords and ``token=`` query
values) before anything is formatted.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_PATTERNS = (
    (re.compile(r"/t/[^/\s\"'?#]+"), "/t/***"),
    (re.compile(r"(?i)([?&](?:token|access_token|auth)=)[^&\s\"'#]+"), r"\1***"),
    (re.compile(r"(://)[^/\s@\"']+@"), r"\1***@"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactSecrets(logging.Filter):
    """Rewrites the message and its arguments in place; the record keeps its shape, so formatters
    that unpack ``args`` (uvicorn's access formatter) still work."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            # Formatters reuse exc_text: an exception's message may hold a URL too.
            record.exc_text = redact(_FORMATTER.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FORMATTER = logging.Formatter()


def redact_handlers(logger: logging.Logger | None = None) -> None:
    """Put the filter on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(RedactSecrets())


def log_config(level: str, *, json_lines: bool = False) -> dict[str, Any]:
    """uvicorn's logging configuration with the redaction filter on every handler, and our own
    loggers (and any library's) sent through the same handlers. The access log, when switched on
    (--access-log), logs every request whatever ``level`` is. With ``json_lines``, every line is a
    JSON object carrying the request id."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    if json_lines:
        config["formatters"] = {name: {"()": "taipan.web.observability.JsonFormatter"}
                                for name in config["formatters"]}
    config["filters"] = {"redact_secrets": {"()": f"{__name__}.RedactSecrets"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_secrets"]
    config["loggers"]["uvicorn.error"]["level"] = level.upper()
    config["loggers"]["uvicorn.access"]["level"] = "INFO"
    config["root"] = {"handlers": ["default"], "level": level.upper()}
    return config


def granian_log_config(level: str, *, json_lines: bool = False) -> dict[str, Any]:
    """The same configuration for granian: its own loggers (``_granian``, and ``granian.access``
    for --access-log, whose records carry the request as a dict of arguments, redacted like any
    other) go through the redacting handlers, at ``level`` and INFO (granian has no trace level)."""
    level = "debug" if level == "trace" else level
    config = log_config(level, json_lines=json_lines)
    formatter = "default" if json_lines else "granian_access"
    if not json_lines:
        config["formatters"]["granian_access"] = {"()": "logging.Formatter", "fmt": "%(levelname)s:  %(message)s"}
    config["handlers"]["granian_access"] = {"formatter": formatter, "class": "logging.StreamHandler",
                                            "stream": "ext://sys.stdout", "filters": ["redact_secrets"]}
    config["loggers"]["_granian"] = {"handlers": ["default"], "level": level.upper(),
                                     "propagate": False}
    config["loggers"]["granian.access"] = {"handlers": ["granian_access"], "level": "INFO", "propagate": False}
    return config
