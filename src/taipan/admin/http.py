"""The HTTP/1.1 protocol `taipan serve` runs: uvicorn's httptools protocol with bounded headers.

httptools (llhttp) sets no limit on the size or number of request headers, so a client could make
the server buffer megabytes before any application code runs. Here the request line and headers
together may take ``server.max_header_bytes`` and at most ``server.max_headers`` fields; past that
the client gets 431 and the connection is closed. (uvicorn's h11 protocol has its own bound,
``h11_max_incomplete_event_size``, used when httptools is not installed.)
"""

from __future__ import annotations

import functools
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from taipan.settings import Settings


@functools.cache
def header_limits() -> tuple[int, int]:
    server = Settings().server
    return server.max_header_bytes, server.max_headers


class _HeadersTooLarge(Exception):
    pass


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_bytes, self._max_count = header_limits()
        self._head_bytes = 0
        self._header_count = 0
        self._in_head = True
        self._refused = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = self._header_count = 0
        self._in_head = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self._max_count:
            self._refused = True
            raise _HeadersTooLarge  # the parser reports it; send_400_response answers 431
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        # Counted after parsing, so that the bytes of a body never count as headers: what is still
        # buffered as an unfinished head is at most the limit plus one read.
        if self._in_head and not self._refused and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self._max_bytes:
                self._refused = True
                self._send_431()

    def send_400_response(self, msg: str) -> None:
        if self._refused:
            self._send_431()
        else:
            super().send_400_response(msg)

    def _send_431(self) -> None:
        body = json.dumps({
            "code": "headers_too_large",
            "message": f"The request headers are larger than {self._max_bytes} bytes or more than "
                       f"{self._max_count} fields",
            "hint": "Send fewer or smaller headers (cookies, tokens)",
        }).encode()
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n"
                             + body)
        self.transport.close()
