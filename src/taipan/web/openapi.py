"""The published API schema (``/api/openapi.json``), made true for every route, generically.

FastAPI documents what a handler declares in its signature. Taipan's routes read their channel
from the path (``/channels/{ch}[/subchannels/{sub}]/...``) through ``request.path_params``, answer
every error with one body shape (web/errors.py), and some read their body themselves. So after
FastAPI has built the document, one pass over *all* routes (also those added later, by any module):

- declares every path parameter of the route's path that the operation does not declare, with the
  constraints its path converter enforces (and, for the names below, the names the server accepts);
- documents the error answers every operation can give, with the shared ``Error`` model, in place
  of FastAPI's validation-error model (our 422 body is an ``Error`` too);
- keeps what a route documents itself (``responses=``, ``openapi_extra=``) as it is.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from taipan.domain.families import KNOWN as FAMILIES
from taipan.domain.names import MAX_CHANNEL_NAME, RESERVED_CHANNEL_NAMES, RESERVED_SUBCHANNEL_NAMES

# Path parameters whose values the server constrains the same way everywhere. A channel that does
# not match cannot exist (and is answered 404), so these say which values are worth sending.
_NAME = {"type": "string", "pattern": r"^[a-z][a-z0-9_-]*$", "minLength": 1, "maxLength": MAX_CHANNEL_NAME}
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "ch": {"description": "Channel name",
           "schema": {**_NAME, "not": {"enum": sorted(RESERVED_CHANNEL_NAMES)}}},
    "sub": {"description": "Subchannel name",
            "schema": {**_NAME, "not": {"enum": sorted(RESERVED_SUBCHANNEL_NAMES)}}},
    "family": {"description": "Artifact family", "schema": {"type": "string", "enum": list(FAMILIES)}},
}

ERROR_MODEL: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error answer: a stable code, a message for people and a hint what to do.",
    "required": ["code", "message", "hint"],
    "properties": {
        "code": {"type": "string", "description": "Stable machine-readable error code"},
        "message": {"type": "string"},
        "hint": {"type": "string"},
        "detail": {"type": "string", "description": "The message again, for FastAPI-style clients"},
    },
}

# The errors any operation can answer: the request's credentials, input, size and rate are checked
# on every route, and an unexpected failure is a 500 with the same body.
COMMON_ERRORS: dict[int, str] = {
    400: "Invalid input (the hint says what to change); nothing was stored",
    401: "Missing, invalid or expired credentials",
    403: "The credentials may not do this",
    404: "Not found, or not visible to the caller",
    405: "Method not allowed",
    413: "The request body or its headers are too large",
    422: "The request does not match this schema",
    429: "Too many failed password checks; retry after Retry-After seconds",
    500: "The server failed; nothing was committed",
}
# Writes can also meet a concurrent change or a state that forbids them.
WRITE_ERRORS: dict[int, str] = {409: "Conflicts with the current state or a concurrent change"}
WRITE_METHODS = {"post", "put", "patch", "delete"}
_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}

_CONVERTER_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": {"type": "string", "pattern": "^[^/]+$", "minLength": 1},
    "path": {"type": "string"},
    "int": {"type": "integer", "minimum": 0},
    "float": {"type": "number", "minimum": 0},
    "uuid": {"type": "string", "format": "uuid"},
}
_PARAM_RE = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_]+))?}")


def path_parameters(path: str) -> list[tuple[str, str]]:
    """The (name, converter) of every parameter in a route path such as ``/a/{ch}/{rest:path}``."""
    return [(m.group(1), m.group(2) or "str") for m in _PARAM_RE.finditer(path)]


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _declare_path_parameters(operation: dict[str, Any], path: str, kinds: dict[str, str]) -> None:
    params = operation.setdefault("parameters", [])
    declared = {p.get("name") for p in params if p.get("in") == "path"}
    for param in params:
        # A parameter the handler declares as a plain string gets the known constraints of its name.
        known = PATH_PARAMETERS.get(param.get("name", ""))
        if known and param.get("in") == "path" and set(param.get("schema", {})) <= {"type", "title"}:
            param["schema"] = dict(known["schema"])
    for name, _ in path_parameters(path):
        converter = kinds.get(name, "str")
        if name in declared:
            continue
        known = PATH_PARAMETERS.get(name, {})
        params.append({"name": name, "in": "path", "required": True,
                       "description": known.get("description", name.replace("_", " ").capitalize()),
                       "schema": dict(known.get("schema") or _CONVERTER_SCHEMAS.get(converter, {"type": "string"}))})


def _document_errors(operation: dict[str, Any], method: str) -> None:
    responses = operation.setdefault("responses", {})
    errors = {**COMMON_ERRORS, **(WRITE_ERRORS if method in WRITE_METHODS else {})}
    for status, description in errors.items():
        key = str(status)
        current = responses.get(key)
        if current is None or _is_fastapi_validation_error(current):
            responses[key] = _error_response(description)
    for key, current in responses.items():
        # An error a route documents itself without saying its body: the body is an Error too.
        if key[:1] in ("4", "5") and isinstance(current, dict) and "content" not in current:
            current["content"] = _error_response("")["content"]
    operation["responses"] = dict(sorted(responses.items()))


def _is_fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    return schema.get("$ref", "").endswith("/HTTPValidationError")


def converters(routes: list[Any]) -> dict[str, str]:
    """Parameter name -> path converter, over every route reachable from ``routes`` (included
    routers too); a name used with two converters gets the loosest, ``path``."""
    found: dict[str, str] = {}
    stack = list(routes)
    while stack:
        route = stack.pop()
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and isinstance(getattr(inner, "routes", None), list):
            stack.extend(inner.routes)
        path = getattr(route, "path", None)
        if isinstance(path, str):
            for name, converter in path_parameters(path):
                found[name] = converter if found.get(name, converter) == converter else "path"
    return found


def complete(schema: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Complete FastAPI's document in place (and return it), for every operation it holds."""
    kinds = converters(routes)
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            _declare_path_parameters(operation, path, kinds)
            _document_errors(operation, method)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_MODEL
    # FastAPI's validation-error models are no longer referenced: our 422 is an Error.
    if "HTTPValidationError" in components and "HTTPValidationError" not in _refs(schema["paths"]):
        components.pop("HTTPValidationError", None)
        if "ValidationError" not in _refs(components):
            components.pop("ValidationError", None)
    return schema


def _refs(node: Any) -> str:
    return repr(node)


def allowed_methods(app: FastAPI, path: str) -> str | None:
    """The ``Allow`` header for ``path``: the methods the schema documents at the most specific
    path template that matches it (fewest parameters: ``/cves/mappings`` before ``/cves/{id}``);
    None for paths the schema does not describe."""
    table = getattr(app.state, "allow_table", None)
    if table is None:
        table = []
        for template, item in app.openapi().get("paths", {}).items():
            pattern = _PARAM_RE.sub("[^/]+", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
            table.append((re.compile(f"^{pattern}$"), len(path_parameters(template)),
                          {m.upper() for m in item if m in _METHODS}))
        app.state.allow_table = table
    matches = [(params, found) for regex, params, found in table if regex.match(path)]
    if not matches:
        return None
    fewest = min(params for params, _ in matches)
    methods = set().union(*(found for params, found in matches if params == fewest))
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    """Serve the completed document at the app's openapi_url (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes, tags=app.openapi_tags, servers=app.servers)
            app.openapi_schema = complete(schema, app.routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
