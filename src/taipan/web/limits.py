"""Request body limits, enforced on the bytes actually read (chunked bodies included).

Content-Length is only a claim: a chunked body has none, and a client may send more than it
declared. So every request's ``receive`` is counted and stopped at the limit of its route: the
upload limit for package uploads (which the multipart parser spools to disk, never to memory),
a small one for sign-in, and 1 MiB for everything else (JSON and form bodies).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taipan.web.errors import error_response

# Multipart framing around the file (boundaries, part headers, the small form fields).
MULTIPART_OVERHEAD = 64 * 1024
UPLOAD_ROUTES = (
    re.compile(r"^/api/channels/[^/]+(?:/subchannels/[^/]+|/[^/]+)?/artifacts/?$"),
    re.compile(r"^/ui/channels/[^/]+(?:/[^/]+)?/upload/?$"),
)
LOGIN_ROUTES = ("/api/auth/login", "/ui/login")


class _TooLarge(Exception):
    """Raised into the application when its request body passes the limit."""


class BodyLimit:
    def __init__(self, app: ASGIApp, *, upload: int, json: int, login: int) -> None:
        self.app = app
        self.upload, self.json, self.login = upload, json, login

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        path = scope["path"]
        if scope["method"] in ("POST", "PUT") and any(r.match(path) for r in UPLOAD_ROUTES):
            return self.upload + MULTIPART_OVERHEAD, "upload"
        if path.rstrip("/") in LOGIN_ROUTES:
            return self.login, "sign-in request"
        return self.json, "request body"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit_for(scope)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(limit, what, scope, receive, send)
            return
        state: dict[str, Any] = {"read": 0, "over": False, "started": False}

        async def counted() -> Message:
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["read"] += len(message.get("body", b""))
                if state["read"] > limit:
                    state["over"] = True
                    raise _TooLarge
            return message

        async def guarded(message: Message) -> None:
            # Once the body was cut off, whatever the application answers (often a parse error)
            # is replaced by the 413 below.
            if state["over"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await self._refuse(limit, what, scope, receive, send)

    async def _refuse(self, limit: int, what: str, scope: Scope, receive: Receive, send: Send) -> None:
        if what == "upload":
            limit -= MULTIPART_OVERHEAD
            code, hint = "upload_too_large", "Ask an admin to raise TAIPAN_SERVER__MAX_UPLOAD_SIZE"
        else:
            code, hint = "request_too_large", "Send a smaller request body"
        # Connection: close, so that the server stops reading a body nobody will use.
        response = error_response(413, code, f"The {what} is larger than the limit of {limit} bytes", hint,
                                  headers={"Connection": "close"})
        await response(scope, receive, send)
