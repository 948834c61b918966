"""Uploads through every protocol a client speaks: the documented form post to the channel URL, twine's
legacy PyPI API (same URL, ``:action=file_upload`` with digests), each credential form."""

from __future__ import annotations

import hashlib
import uuid

import httpx
import pytest


@pytest.fixture
def channel(taipan_server) -> str:
    name = f"up-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        c.post(f"/channels/{name}/subchannels", json={"name": "lab"}).raise_for_status()
    return name


def _files(taipan_server, channel: str) -> set[str]:
    with taipan_server.client(taipan_server.admin_token()) as c:
        r = c.get(f"/channels/{channel}/artifacts")
        return {i["name"] for i in r.json()["items"]}


def test_form_post_to_the_channel_url_with_each_credential(taipan_server, channel, conda_packages):
    token = taipan_server.admin_token()
    p = conda_packages["hello"]
    files = {"content": (p.name, p.read_bytes())}
    base = taipan_server.url
    r = httpx.post(f"{base}/api/repo/{channel}", files=files, data={"filetype": "conda1"}, headers={"X-Auth": token})
    assert r.status_code == 201 and r.json()["ckey"] == "noarch/hello-1.0-0.conda"
    p2 = conda_packages["hello-1.1"]
    for url, auth in ((f"{base}/api/repo/{channel}/lab/", (token, "x-auth-token")),
                      (f"{base}/api/repo/t/{token}/{channel}/lab", None)):
        r = httpx.post(url, files={"content": (p2.name, p2.read_bytes())}, auth=auth)
        assert r.status_code in (201, 409), r.text
    with taipan_server.client(token) as c:
        assert c.get(f"/channels/{channel}/subchannels/lab/artifacts").json()["total_count"] == 1
    assert httpx.get(f"{base}/api/repo/{channel}/lab/noarch/hello-1.1-0.conda").status_code == 200


def test_twine_style_upload_checks_the_digests(taipan_server, channel, conda_packages):
    token = taipan_server.admin_token()
    p = conda_packages["world"]
    data = p.read_bytes()
    good = {":action": "file_upload", "sha256_digest": hashlib.sha256(data).hexdigest(),
            "md5_digest": hashlib.md5(data).hexdigest(), "name": "world", "version": "2.0"}
    url = f"{taipan_server.url}/api/repo/{channel}/"
    bad = httpx.post(url, files={"content": (p.name, data)}, data={**good, "sha256_digest": "0" * 64},
                     auth=("__token__", token))
    assert bad.status_code == 400 and bad.json()["code"] == "digest_mismatch"
    wrong_name = httpx.post(url, files={"content": (p.name, data)}, data={**good, "name": "other"},
                            auth=("__token__", token))
    assert wrong_name.status_code == 400 and wrong_name.json()["code"] == "filename_mismatch"
    assert _files(taipan_server, channel) == set()
    ok = httpx.post(url, files={"content": (p.name, data)}, data=good, auth=("__token__", token))
    assert ok.status_code == 200, ok.text
    again = httpx.post(url, files={"content": (p.name, data)}, data=good, auth=("__token__", token))
    assert again.status_code == 409  # what twine's --skip-existing understands
    odd = httpx.post(url, files={"content": (p.name, data)}, data={**good, ":action": "remove_pkg"},
                     auth=("__token__", token))
    assert odd.status_code == 400 and odd.json()["code"] == "unsupported_action"


def test_upload_to_a_channel_url_needs_credentials(taipan_server, channel, conda_packages):
    p = conda_packages["hello"]
    r = httpx.post(f"{taipan_server.url}/api/repo/{channel}", files={"content": (p.name, p.read_bytes())})
    assert r.status_code == 401 and r.headers["www-authenticate"].lower().startswith("basic")
    r = httpx.post(f"{taipan_server.url}/api/repo/{channel}", files={"content": (p.name, p.read_bytes())},
                   auth=("not-a-token", "x-auth-token"))
    assert r.status_code == 401
    assert _files(taipan_server, channel) == set()
