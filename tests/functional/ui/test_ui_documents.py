"""The web UI shows notebooks rendered and sanitised (no script can run), environment files, and a
channel's downloads per day and per package as SVG (issue 12)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx

EVIL_NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5, "metadata": {"language_info": {"name": "python"}},
    "cells": [
        {"id": "m", "cell_type": "markdown", "metadata": {},
         "source": "# Sales analysis\n<script>alert(1)</script>\n[x](javascript:alert(2))"},
        {"id": "c", "cell_type": "code", "metadata": {}, "execution_count": 3, "source": "print('<b>hi</b>')",
         "outputs": [{"output_type": "display_data", "metadata": {},
                      "data": {"text/html": "<table><tr><td>42</td></tr></table><img src=x onerror=alert(3)>"
                                            "<script>alert(4)</script>", "text/plain": "42"}}]},
    ],
}


def test_previews_and_download_chart(taipan_server, conda_packages, tmp_path: Path) -> None:
    name = f"uidoc-{uuid.uuid4().hex[:8]}"
    token = taipan_server.admin_token()
    with taipan_server.client(token) as c:
        c.post("/channels", json={"name": name}).raise_for_status()
        for filename, data in (("sales.ipynb", json.dumps(EVIL_NOTEBOOK).encode()),
                               ("environment.yml", b"name: analytics\ndependencies:\n  - numpy>=1.26\n"),
                               (conda_packages["hello"].name, conda_packages["hello"].read_bytes())):
            c.post(f"/channels/{name}/artifacts", files={"content": (filename, data)}).raise_for_status()
    for _ in range(3):
        assert httpx.get(f"{taipan_server.api}/repo/{name}/noarch/hello-1.0-0.conda").status_code == 200
    assert httpx.get(f"{taipan_server.api}/repo/{name}/jupyter/sales.ipynb").status_code == 200
    with httpx.Client(base_url=taipan_server.url, timeout=30) as browser:
        page = browser.get(f"/ui/preview/{name}", params={"ckey": "jupyter/sales.ipynb"})
        assert page.status_code == 200
        text = page.text
        assert "<h1>Sales analysis</h1>" in text and "&lt;b&gt;hi&lt;/b&gt;" in text and "<td>42</td>" in text
        assert "<script" not in text.lower() and "onerror" not in text and 'href="javascript:' not in text
        assert "<img" not in text
        assert "script-src" not in page.headers["content-security-policy"]  # and no script may run anyway
        env = browser.get(f"/ui/preview/{name}", params={"ckey": "envs/analytics/environment.yml"})
        assert "numpy&gt;=1.26" in env.text
        assert browser.get(f"/ui/preview/{name}", params={"ckey": "jupyter/none.ipynb"}).status_code == 404
        listing = browser.get(f"/ui/channels/{name}/packages/sales", params={"family": "notebook"}).text
        assert f"/ui/preview/{name}?ckey=jupyter/sales.ipynb" in listing
        deadline = time.monotonic() + 20
        while True:  # downloads are recorded in batches
            channel = browser.get(f"/ui/channels/{name}").text
            if "4 download(s)" in channel or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert "4 download(s) in the last 30 days" in channel
        assert '<svg xmlns="http://www.w3.org/2000/svg" role="img"' in channel
        assert "<title>hello: 3</title>" in channel and "<title>sales: 1</title>" in channel
