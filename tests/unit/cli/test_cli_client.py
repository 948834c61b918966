from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from taipan.client import TaipanClient
from taipan.errors import ChannelFrozen, Conflict, NotFound, TaipanError, TooManyRequests, Unauthenticated


def client_for(handler, **kw) -> TaipanClient:  # type: ignore[no-untyped-def]
    return TaipanClient("http://h/api", transport=httpx.MockTransport(handler), **kw)


def err(status: int, code: str, message: str, hint: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message, "hint": hint}, headers=headers)


@pytest.mark.parametrize(("status", "code", "cls"), [
    (404, "not_found", NotFound), (409, "conflict", Conflict), (401, "invalid_token", Unauthenticated),
    (400, "channel_frozen", ChannelFrozen),
])
def test_errors_map_to_taipan_errors(status: int, code: str, cls: type) -> None:
    c = client_for(lambda r: err(status, code, "It broke", "Do this"))
    with pytest.raises(cls) as exc:
        c.channel("snakes")
    assert exc.value.message == "It broke" and exc.value.hint == "Do this" and exc.value.code == code


def test_server_error_and_non_json_body() -> None:
    c = client_for(lambda r: httpx.Response(502, text="<html>Bad gateway</html>"))
    with pytest.raises(TaipanError) as exc:
        c.account()
    assert exc.value.code == "server_error" and "502" in exc.value.message and exc.value.hint


def test_retry_after_is_kept() -> None:
    c = client_for(lambda r: err(429, "too_many_requests", "Slow down", **{"Retry-After": "7"}))
    with pytest.raises(TooManyRequests) as exc:
        c.account()
    assert exc.value.retry_after == 7


def test_connection_error_is_one_taipan_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TaipanError) as exc:
        client_for(refuse).account()
    assert exc.value.code == "connection_error" and "Could not reach http://h/api" in exc.value.message


def test_x_auth_everywhere_bearer_only_for_token_endpoints() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/tokens"):
            return httpx.Response(200, json={"items": []})
        return httpx.Response(200, json={})

    c = client_for(handler, token="opaque")
    c.session_token = "jwt"
    c.account()
    c.tokens()
    assert seen[0].headers["X-Auth"] == "opaque" and "Authorization" not in seen[0].headers
    assert seen[1].headers["Authorization"] == "Bearer jwt" and "X-Auth" not in seen[1].headers


def test_channel_urls_and_bulk_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={})

    c = client_for(handler)
    c.bulk("snakes/lua", "copy", [{"name": "hello", "family": "conda"}], target="lua/sub")
    assert seen[0].url.path == "/api/channels/snakes/subchannels/lua/artifacts/bulk"
    assert json.loads(seen[0].content) == {"action": "copy", "items": [{"name": "hello", "family": "conda"}],
                                           "target_channel": "lua", "target_subchannel": "sub"}
    c.create_channel("snakes/lua")
    assert seen[1].url.path == "/api/channels/snakes/subchannels" and json.loads(seen[1].content) == {
        "name": "lua"}


def test_upload_streams_with_progress_to_the_subchannel_path(tmp_path: Path) -> None:
    f = tmp_path / "hello-1.0-0.conda"
    f.write_bytes(b"PK\x03\x04" + b"x" * 300_000)
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        request.read()
        seen.append(request)
        return httpx.Response(201, json={"ckey": "noarch/hello-1.0-0.conda"})

    sent: list[int] = []
    answer = client_for(handler).upload("snakes/lua", f, "conda1", on_progress=sent.append)
    assert answer == {"ckey": "noarch/hello-1.0-0.conda"}
    req = seen[0]
    assert req.url.path == "/api/channels/snakes/lua/artifacts"
    assert "Content-Length" in req.headers  # sized from the file, not chunked
    body = req.content
    assert b'name="content"; filename="hello-1.0-0.conda"' in body
    assert b'name="filetype"\r\n\r\nconda1' in body and b'name="size"\r\n\r\n300004' in body
    assert sum(sent) == 300_004 and len([n for n in sent if n]) > 1  # read in chunks, not at once
