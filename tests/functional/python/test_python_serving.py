"""The simple repository of a channel: PEP 503 HTML and PEP 691 JSON, PEP 700 fields, PEP 658/714
metadata, hashes, yanking, name normalisation, conditional requests, private channels."""

from __future__ import annotations

import hashlib
import html
import time
from pathlib import Path

import httpx
import pytest
from pyclients import twine

from pydists import build_wheel

JSON = "application/vnd.pypi.simple.v1+json"


@pytest.fixture
def filled(taipan_server, pychannel, token, clean_env, python_dists) -> str:  # type: ignore[no-untyped-def]
    ch = pychannel("serve")
    twine(clean_env, f"{taipan_server.url}/api/repo/{ch}", [python_dists[k] for k in
          ("hello-wheel", "hello-sdist", "hello-1.1-wheel", "world-wheel", "world-sdist")], token, "x-auth-token")
    return ch


def test_pages_in_html_and_json(taipan_server, filled: str, python_dists) -> None:
    base = f"{taipan_server.url}/api/repo/{filled}/simple/"
    root = httpx.get(base)
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    assert '<a href="pyhello/">pyhello</a>' in root.text and '<a href="pyworld/">pyworld</a>' in root.text
    assert "Accept" in root.headers["vary"]
    doc = httpx.get(base, headers={"Accept": JSON}).json()
    assert doc["meta"]["api-version"] == "1.1"
    assert {p["name"] for p in doc["projects"]} == {"pyhello", "pyworld"}

    page = httpx.get(base + "pyhello/")
    assert page.headers["content-type"].startswith("text/html")
    wheel = python_dists["hello-1.1-wheel"]
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert f'href="{wheel.name}#sha256={sha}"' in page.text
    assert f'data-requires-python="{html.escape(">=3.8")}"' in page.text and "&gt;=3.8" in page.text
    # PEP 691 JSON wins when asked for with a higher q; HTML is the default and wins ties in order.
    for accept, is_json in ((JSON, True), (f"text/html;q=0.5, {JSON}", True),
                            (f"text/html, {JSON};q=0.9", False), ("*/*", False), ("application/xml", False),
                            ("application/vnd.pypi.simple.latest+json", True)):
        r = httpx.get(base + "pyhello/", headers={"Accept": accept})
        assert r.headers["content-type"].startswith(JSON if is_json else "text/html"), accept
    assert httpx.get(base + "pyhello/", params={"format": JSON}).headers["content-type"] == JSON
    doc = httpx.get(base + "pyhello/", headers={"Accept": JSON}).json()
    assert doc["name"] == "pyhello" and doc["versions"] == ["1.0", "1.1"]
    by_name = {f["filename"]: f for f in doc["files"]}
    assert set(by_name) == {python_dists[k].name for k in ("hello-wheel", "hello-sdist", "hello-1.1-wheel")}
    f = by_name[wheel.name]
    assert f["url"] == wheel.name and f["hashes"] == {"sha256": sha}
    assert f["requires-python"] == ">=3.8" and f["size"] == wheel.stat().st_size and f["yanked"] is False
    assert f["upload-time"].endswith("Z")
    # PEP 658/714: the metadata file, with the hash the page announces.
    meta = httpx.get(base + f"pyhello/{wheel.name}.metadata")
    assert meta.status_code == 200 and "Name: pyhello" in meta.text
    assert f["core-metadata"] == {"sha256": hashlib.sha256(meta.content).hexdigest()}
    assert f'data-core-metadata="sha256={f["core-metadata"]["sha256"]}"' in page.text
    # The file itself, byte for byte, and a Range.
    got = httpx.get(base + f"pyhello/{wheel.name}")
    assert got.content == wheel.read_bytes()
    part = httpx.get(base + f"pyhello/{wheel.name}", headers={"Range": "bytes=0-9"})
    assert part.status_code == 206 and part.content == wheel.read_bytes()[:10]


def test_names_are_normalised_and_misses_are_404(taipan_server, filled: str) -> None:
    base = f"{taipan_server.url}/api/repo/{filled}/simple/"
    for spelling in ("PyHello/", "PyHello", "pyhello", "PYHELLO/"):
        r = httpx.get(base + spelling)
        assert r.status_code == 301 and r.headers["location"].endswith(f"/api/repo/{filled}/simple/pyhello/")
    r = httpx.get(base[:-1])
    assert r.status_code == 301 and r.headers["location"].endswith("/simple/")
    assert httpx.get(base + "PyHello/", follow_redirects=True).status_code == 200
    missing = httpx.get(base + "nosuchproject/")
    assert missing.status_code == 404 and missing.json()["code"] == "project_not_found"
    assert httpx.get(base + "pyhello/nosuch-1.0.tar.gz").status_code == 404


def test_etag_304_head_and_rebuild_on_change(taipan_server, filled: str, token, tmp_path: Path) -> None:
    base = f"{taipan_server.url}/api/repo/{filled}/simple/"
    first = httpx.get(base + "pyworld/")
    etag = first.headers["etag"]
    assert httpx.get(base + "pyworld/", headers={"If-None-Match": etag}).status_code == 304
    head = httpx.head(base + "pyworld/")
    assert head.status_code == 200 and head.headers["etag"] == etag and head.content == b""
    other = httpx.get(base + "pyhello/").headers["etag"]
    # An upload of pyworld rebuilds its page (new ETag) and leaves the other project's page as it was.
    wheel = build_wheel(tmp_path, "pyworld", "3.0")
    r = httpx.post(f"{taipan_server.url}/api/repo/{filled}", headers={"X-Auth": token},
                   files={"content": (wheel.name, wheel.read_bytes())}, data={":action": "file_upload"})
    assert r.status_code == 200, r.text
    again = httpx.get(base + "pyworld/", headers={"If-None-Match": etag})
    assert again.status_code == 200 and wheel.name in again.text and again.headers["etag"] != etag
    assert httpx.get(base + "pyhello/", headers={"If-None-Match": other}).status_code == 304


def test_yank_and_unyank(taipan_server, filled: str, api, python_dists) -> None:
    base = f"{taipan_server.url}/api/repo/{filled}/simple/pyhello/"
    r = api.put(f"/channels/{filled}/artifacts/python/PyHello/yank",
                json={"version": "1.1", "reason": "broken <build>"})
    assert r.status_code == 200 and r.json()["count"] == 1
    wheel = python_dists["hello-1.1-wheel"].name
    doc = httpx.get(base, headers={"Accept": JSON}).json()
    yanked = {f["filename"]: f["yanked"] for f in doc["files"]}
    assert yanked[wheel] == "broken <build>" and yanked[python_dists["hello-wheel"].name] is False
    assert 'data-yanked="broken &lt;build&gt;"' in httpx.get(base).text
    history = api.get(f"/channels/{filled}/history").json()
    assert "artifacts_yanked" in str(history)
    assert api.put(f"/channels/{filled}/artifacts/python/pyhello/yank", json={"yanked": False}).json()["count"] == 1
    assert "data-yanked" not in httpx.get(base).text
    assert api.put(f"/channels/{filled}/artifacts/python/nosuch/yank", json={}).status_code == 404
    assert api.put(f"/channels/{filled}/artifacts/conda/pyhello/yank", json={}).json()["code"] == "not_yankable"
    anon = httpx.put(f"{taipan_server.api}/channels/{filled}/artifacts/python/pyhello/yank", json={})
    assert anon.status_code == 401


def test_private_channel_asks_for_basic_credentials(taipan_server, pychannel, token, clean_env,
                                                    python_dists) -> None:
    ch = pychannel("private", privacy="private")
    twine(clean_env, f"{taipan_server.url}/api/repo/{ch}", [python_dists["hello-wheel"]], token, "x-auth-token")
    base = f"{taipan_server.url}/api/repo/{ch}/simple/pyhello/"
    anon = httpx.get(base)
    assert anon.status_code == 401 and anon.headers["www-authenticate"].lower().startswith("basic")
    for auth in ((token, "x-auth-token"), ("__token__", token)):
        assert httpx.get(base, auth=auth).status_code == 200
    assert httpx.get(f"{taipan_server.url}/api/repo/t/{token}/{ch}/simple/pyhello/").status_code == 200
    assert httpx.get(base, auth=("__token__", "wrong")).status_code == 401


def test_listings_search_and_reserved_names(taipan_server, filled: str, api) -> None:
    files = api.get(f"/channels/{filled}/artifacts/python/PyHello/files").json()["items"]
    assert {f["family"] for f in files} == {"python"}
    assert {f["type"] for f in files} == {"bdist_wheel", "sdist"}
    packages = api.get(f"/channels/{filled}/artifacts").json()["items"]
    hello = next(p for p in packages if p["name"] == "pyhello")
    assert hello["family"] == "python" and "pip install" in hello["metadata"]["install_cmd"]
    found = api.get("/artifacts", params={"q": "pyworld", "family": "python"}).json()
    assert any(i["name"] == "pyworld" for i in found["items"])
    page = httpx.get(f"{taipan_server.url}/ui/channels/{filled}/packages/pyhello", params={"family": "python"})
    assert page.status_code == 200
    assert f"pip install --index-url {taipan_server.url}/api/repo/{filled}/simple/ pyhello" in page.text
    for name in ("simple", "src", "bin", "t", "jupyter", "linux-64"):
        r = api.post(f"/channels/{filled}/subchannels", json={"name": name})
        assert r.status_code == 400, name
    # A download is recorded.
    wheel = files[0]
    before = wheel["download_count"]
    assert httpx.get(wheel["url"]).status_code == 200
    deadline = time.monotonic() + 20  # downloads are written in batches, twice a second
    while time.monotonic() < deadline:
        after = api.get(f"/channels/{filled}/artifacts/python/pyhello/files").json()["items"]
        if next(f for f in after if f["ckey"] == wheel["ckey"])["download_count"] > before:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the download was not counted")
