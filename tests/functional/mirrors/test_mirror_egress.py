"""SSRF: mirrors fetch only from public addresses unless mirrors.allowed_networks allows more;
checked after DNS resolution, at creation and on every redirect hop."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import api, start_server, unique, wait_state


class _Redirect(BaseHTTPRequestHandler):
    target = ""
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.target:
            self.send_response(302)
            self.send_header("Location", self.target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _serve(host: str, target: str = "") -> tuple[ThreadingHTTPServer, list[str]]:
    handler = type("H", (_Redirect,), {"target": target, "hits": []})
    srv = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, handler.hits


@pytest.fixture
def strict_server(tmp_path) -> Iterator:
    """A server that allows only 127.0.0.1 itself (not the rest of 127/8, nor ::1)."""
    server = start_server(tmp_path / "home", {"TAIPAN_MIRRORS__ALLOWED_NETWORKS": '["127.0.0.1/32"]'})
    yield server
    server.stop()


def test_internal_sources_are_refused_at_creation(strict_server) -> None:
    channel = unique("egress")
    with api(strict_server) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        for source in ("http://127.0.0.2:6379/ch", "http://[::1]:5432/ch", "http://169.254.169.254/latest",
                       "http://10.1.2.3/ch", "http://[::ffff:127.0.0.2]/ch", "http://0.0.0.0:8080/ch"):
            r = c.post(f"/channels/{channel}/mirrors", json={"mirror_name": unique("m"), "source_root": source})
            assert r.status_code == 400, (source, r.text)
            err = r.json()
            assert err["code"] == "source_not_allowed" and "allowed_networks" in err["hint"], err
        # the same on --update
        r = c.post(f"/channels/{channel}/mirrors", json={"mirror_name": "ok",
                                                          "source_root": "http://127.0.0.1:9/ch"})
        assert r.status_code == 201, r.text
        r = c.put(f"/channels/{channel}/mirrors/ok", json={"source_root": "http://127.0.0.3:9/ch"})
        assert r.status_code == 400 and r.json()["code"] == "source_not_allowed"
        assert c.get(f"/channels/{channel}/mirrors/ok").json()["source_root"] == "http://127.0.0.1:9/ch"
        # a host that does not resolve (yet) is accepted; its runs check again
        r = c.post(f"/channels/{channel}/mirrors", json={"mirror_name": "later",
                                                          "source_root": "https://conda.example.invalid/c"})
        assert r.status_code == 201, r.text


def test_default_policy_refuses_host_names_of_loopback(tmp_path) -> None:
    """With no setting at all, a name that resolves to loopback (localhost) is refused."""
    server = start_server(tmp_path / "home", {"TAIPAN_MIRRORS__ALLOWED_NETWORKS": "[]"})
    try:
        channel = unique("egress")
        with api(server) as c:
            assert c.post("/channels", json={"name": channel}).status_code == 201
            r = c.post(f"/channels/{channel}/mirrors", json={"mirror_name": "m",
                                                              "source_root": "http://localhost:6379/ch"})
            assert r.status_code == 400 and r.json()["code"] == "source_not_allowed", r.text
    finally:
        server.stop()


def test_redirect_hops_are_checked(strict_server) -> None:
    inner, inner_hits = _serve("127.0.0.2")
    outer, outer_hits = _serve("127.0.0.1", f"http://127.0.0.2:{inner.server_address[1]}")
    try:
        channel = unique("hop")
        with api(strict_server) as c:
            assert c.post("/channels", json={"name": channel}).status_code == 201
            r = c.post(f"/channels/{channel}/mirrors", json={
                "mirror_name": "hop", "source_root": f"http://127.0.0.1:{outer.server_address[1]}/ch",
                "filters": {"subdirs": ["noarch"]}, "run_now": True})
            assert r.status_code == 201, r.text
        m = wait_state(strict_server, channel, "hop", ("failed",), timeout=60)
        assert "not a public address" in m["sync_state"]["last_exception"], m["sync_state"]
        assert outer_hits and not inner_hits  # redirected, and the internal target never contacted
    finally:
        for srv in (inner, outer):
            srv.shutdown()
            srv.server_close()
