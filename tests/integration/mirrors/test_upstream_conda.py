"""The conda upstream fetcher against a real channel served on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import orjson
import pytest
from mirror_upstream import UpstreamServer, build_channel, upstream_records

from taipan.errors import UpstreamError
from taipan.upstreams.conda import CondaUpstream, partial_path


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_channel(tmp_path_factory.mktemp("upstream"))


@pytest.fixture
def server(channel: Path):
    srv = UpstreamServer(channel).start()
    yield srv
    srv.stop()


def test_subdirs_and_zst_repodata(server: UpstreamServer, channel: Path) -> None:
    with CondaUpstream(server.url, backoff=0.01) as up:
        assert up.subdirs() == ["linux-64", "noarch", "osx-arm64"]
        got = up.fetch_repodata("linux-64")
        assert got.url.endswith("repodata.json.zst") and got.last_modified
        assert orjson.loads(got.content) == orjson.loads((channel / "linux-64" / "repodata.json").read_bytes())
        again = up.fetch_repodata("linux-64", etag=got.etag, last_modified=got.last_modified)
        assert again.not_modified and again.content is None
        assert up.fetch_repodata("win-64").missing
    assert server.hits["GET /linux-64/repodata.json"] == 0  # .zst was preferred


def test_plain_json_when_no_zst(server: UpstreamServer, channel: Path) -> None:
    server.no_zst = True
    with CondaUpstream(server.url, backoff=0.01) as up:
        got = up.fetch_repodata("noarch")
        assert got.url.endswith("/noarch/repodata.json")
        up.fetch_repodata("linux-64")
    assert server.hits["GET /linux-64/repodata.json.zst"] == 0  # learned once, not asked again


def test_retries_then_succeeds(server: UpstreamServer) -> None:
    server.fail["/noarch/repodata.json.zst"] = 2
    slept: list[float] = []
    with CondaUpstream(server.url, backoff=0.5, sleep=slept.append) as up:
        assert up.fetch_repodata("noarch").content
    assert slept == [0.5, 1.0]


def test_gives_up_with_clear_error(server: UpstreamServer) -> None:
    server.fail["/noarch/repodata.json.zst"] = 99
    with CondaUpstream(server.url, retries=2, sleep=lambda s: None) as up, \
            pytest.raises(UpstreamError) as err:
        up.fetch_repodata("noarch")
    assert err.value.code == "upstream_unreachable" and "HTTP 503" in err.value.message


def test_unreachable_source() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with CondaUpstream(f"http://127.0.0.1:{port}/x", retries=1, sleep=lambda s: None) as up, \
            pytest.raises(UpstreamError) as err:
        up.subdirs()
    assert err.value.code == "upstream_unreachable" and err.value.hint


def test_download_verifies_and_resumes(server: UpstreamServer, channel: Path, tmp_path: Path) -> None:
    fn, rec = next((f, r) for f, r in upstream_records(channel)["linux-64"].items()
                   if f.startswith("apachething"))
    data = (channel / "linux-64" / fn).read_bytes()
    dest = partial_path(tmp_path, rec["sha256"], fn)
    dest.write_bytes(data[:1000])  # a download that a killed sync left behind
    with CondaUpstream(server.url) as up:
        got = up.download(up.file_url("linux-64", fn), dest, sha256=rec["sha256"], size=rec["size"])
    assert got.sha256 == rec["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert got.md5 == rec["md5"] and got.size == len(data)


def test_download_rejects_bad_checksum(server: UpstreamServer, channel: Path, tmp_path: Path) -> None:
    fn, rec = next(iter(upstream_records(channel)["noarch"].items()))
    with CondaUpstream(server.url) as up, pytest.raises(UpstreamError) as err:
        up.download(up.file_url("noarch", fn), tmp_path / "x.part", sha256="ab" * 32, size=rec["size"])
    assert err.value.code == "upstream_checksum"
    assert not (tmp_path / "x.part").exists()


def test_stream_to_sink(server: UpstreamServer, channel: Path, tmp_path: Path) -> None:
    fn, rec = next(iter(upstream_records(channel)["noarch"].items()))
    with CondaUpstream(server.url) as up, open(tmp_path / "sink", "wb") as sink:
        body = b"".join(up.stream_to(up.file_url("noarch", fn), sink, sha256=rec["sha256"], size=rec["size"]))
    assert body == (channel / "noarch" / fn).read_bytes() == (tmp_path / "sink").read_bytes()


def test_requests_go_through_the_proxy(server: UpstreamServer) -> None:
    """A minimal forwarding proxy: it sees absolute URLs, fetches them and counts them."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import httpx

    seen: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.path)
            r = httpx.get(self.path)
            self.send_response(r.status_code)
            self.send_header("Content-Length", str(len(r.content)))
            self.end_headers()
            self.wfile.write(r.content)

    proxy = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=proxy.serve_forever, args=(0.05,), daemon=True).start()
    try:
        with CondaUpstream(server.url, proxy=f"http://127.0.0.1:{proxy.server_address[1]}") as up:
            assert up.fetch_repodata("noarch").content
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert seen == [f"{server.url}/noarch/repodata.json.zst"]
