"""GET /api/artifacts?family=: the family filter is applied before paging, so total_count is right."""

from __future__ import annotations

import uuid


def test_search_filters_by_family(taipan_server, conda_packages) -> None:  # type: ignore[no-untyped-def]
    channel = f"fam-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        path = conda_packages["world"]
        r = c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())},
                   data={"filetype": "conda1", "size": str(path.stat().st_size)})
        assert r.status_code == 201, r.text
        conda = c.get("/artifacts", params={"q": "world", "family": "conda"}).json()
        assert conda["total_count"] >= 1 and all(i["family"] == "conda" for i in conda["items"])
        python = c.get("/artifacts", params={"q": "world", "family": "python"}).json()
        # The session's server is shared: other tests may hold Python packages named like "pyworld".
        assert python["sort"] == "-download_count" and python["total_count"] == len(python["items"])
        assert all(i["family"] == "python" for i in python["items"])
        assert not [i for i in python["items"] if i["name"] == "world"]
        bad = c.get("/artifacts", params={"q": "world", "family": "nope"})
        assert bad.status_code == 400 and bad.json()["code"]


def test_search_honours_sort(taipan_server, conda_packages) -> None:  # type: ignore[no-untyped-def]
    import time

    channel = f"srt-{uuid.uuid4().hex[:8]}"
    with taipan_server.client(taipan_server.admin_token()) as c:
        assert c.post("/channels", json={"name": channel}).status_code == 201
        for key in ("hello", "world"):
            path = conda_packages[key]
            c.post(f"/channels/{channel}/artifacts", files={"content": (path.name, path.read_bytes())},
                   data={"filetype": "conda1", "size": str(path.stat().st_size)}).raise_for_status()

        def names(sort: str) -> list[str]:
            r = c.get("/artifacts", params={"q": "o", "sort": sort, "limit": 500})
            r.raise_for_status()
            return [i["name"] for i in r.json()["items"] if i["channel"] == channel]

        assert names("name") == ["hello", "world"] and names("-name") == ["world", "hello"]
        url = f"{taipan_server.api}/repo/{channel}/linux-64/{conda_packages['world'].name}"
        for _ in range(2):
            assert c.get(url).status_code == 200
        deadline = time.monotonic() + 15  # downloads are counted in batches
        while names("-download_count") != ["world", "hello"] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert names("-download_count") == ["world", "hello"]
        assert names("download_count") == ["hello", "world"]
        bad = c.get("/artifacts", params={"q": "o", "sort": "size"})
        assert bad.status_code == 400 and "sort" in bad.json()["message"].lower()
