"""The application on granian's native interface (RSGI): each request is handed to the ASGI
application as an ASGI scope with ``receive`` and ``send`` that speak to granian's protocol object.

granian's own ASGI layer builds every scope and turns every ``send`` into an awaitable in its Rust
code, and that per-request cost dominates the smallest answers (a 234-byte shard, a 304). Through
RSGI the answer is one call (``response_bytes``, ``response_file``) and the scope is built here from
what the request uses. The lifespan runs as under any ASGI server: started before the worker serves,
ended after it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote

from granian.rsgi import ProtocolClosed
from starlette.types import ASGIApp, Message

_ASGI = {"version": "3.0", "spec_version": "2.3"}
_EXTENSIONS: dict[str, Any] = {"http.response.pathsend": {}}


def text_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """ASGI's header pairs (bytes) as granian's (text)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]


def byte_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """granian's request header pairs (text) as ASGI's (bytes)."""
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


async def send_pieces(stream: Any, body: bytes | bytearray | memoryview, piece: int) -> bool:
    """``body`` through a granian response stream in pieces of ``piece`` bytes; False when the
    client went away first (the rest is not sent, and nothing is raised to granian, which would
    log it as the application's failure)."""
    view = memoryview(body)
    try:
        for start in range(0, len(body), piece):
            await stream.send_bytes(bytes(view[start:start + piece]))
    except ProtocolClosed:
        return False
    return True


async def nothing(*_: Any) -> None:
    """An ASGI application, ``receive`` or ``send`` that does nothing."""


def address(text: str) -> tuple[str, int] | None:
    """granian's "host:port" (IPv6 in brackets) as ASGI's (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


class _Receive:
    """The request body in pieces as granian reads them, then (once the body is read) a disconnect
    when the client goes away."""

    __slots__ = ("proto", "chunks", "done")

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.chunks: Any = None
        self.done = False

    async def __call__(self) -> Message:
        if self.done:
            await self.proto.client_disconnect()
            return {"type": "http.disconnect"}
        if self.chunks is None:
            self.chunks = self.proto.__aiter__()
        try:
            chunk = await self.chunks.__anext__()
        except StopAsyncIteration:
            self.done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": bytes(chunk), "more_body": True}


class _Send:
    """ASGI's response messages as granian's calls: a body sent in one message is one
    ``response_bytes``, a pathsend is ``response_file``, anything else a stream. Once the client
    has gone, the rest of a stream is dropped, as uvicorn and granian's ASGI do: the application
    hears of it from ``receive`` (``http.disconnect``) and stops."""

    __slots__ = ("proto", "status", "headers", "stream", "gone")

    def __init__(self, proto: Any) -> None:
        self.proto = proto
        self.status = 500
        self.headers: list[tuple[str, str]] = []
        self.stream: Any = None
        self.gone = False

    async def __call__(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.body":
            body = message.get("body", b"")
            if self.stream is None:
                if not message.get("more_body", False):
                    self.proto.response_bytes(self.status, self.headers, bytes(body))
                    return
                self.stream = self.proto.response_stream(self.status, self.headers)
            if body and not self.gone:
                self.gone = not await send_pieces(self.stream, body, len(body))
        elif kind == "http.response.start":
            self.status = message["status"]
            self.headers = text_headers(message["headers"])
        elif kind == "http.response.pathsend":
            self.proto.response_file(self.status, self.headers, message["path"])
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")


class _Lifespan:
    """The ASGI lifespan protocol, driven from granian's worker start and end hooks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.answers: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, self.queue.get, self.answers.put)
        except BaseException as exc:
            await self.answers.put({"type": "lifespan.failed", "message": repr(exc)})
            raise

    async def _step(self, event: str) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())
        await self.queue.put({"type": event})
        answer = await self.answers.get()
        if answer["type"] != f"{event}.complete":
            raise RuntimeError(f"the application's {event} failed: {answer.get('message', '')}")

    async def startup(self) -> None:
        await self._step("lifespan.startup")

    async def shutdown(self) -> None:
        await self._step("lifespan.shutdown")
        if self.task is not None:
            await self.task


class RSGIApp:
    """An ASGI application served through RSGI (``__rsgi__`` and granian's worker hooks). ``fast``
    answers what it can natively first (True when it did)."""

    def __init__(self, app: ASGIApp, fast: Callable[[Any, Any], Awaitable[bool]] | None = None) -> None:
        self.app = app
        self.fast = fast
        self.lifespan = _Lifespan(app)

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.lifespan.startup())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.run_until_complete(self.lifespan.shutdown())

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return  # no websockets here (granian closes the connection)
        fast = self.fast
        if fast is not None and await fast(scope, proto):
            return
        path = scope.path
        asgi_scope = {
            "type": "http", "asgi": _ASGI, "http_version": scope.http_version, "method": scope.method,
            "scheme": scope.scheme, "path": path,
            "raw_path": quote(path).encode("latin-1"), "query_string": scope.query_string.encode("latin-1"),
            "root_path": "", "headers": byte_headers(scope.headers.items()),
            "client": address(scope.client), "server": address(scope.server),
            "extensions": _EXTENSIONS, "state": self.lifespan.state.copy(),
        }
        await self.app(asgi_scope, _Receive(proto), _Send(proto))

