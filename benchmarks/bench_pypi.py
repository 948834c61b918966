"""A PyPI-like channel: a warm simple page of a project with 2,000 files against nginx serving the same
bytes, and upload -> visible on the simple pages with 10,000 projects in the channel.

    .venv/bin/python benchmarks/bench_pypi.py [--projects 10000] [--files 2000] [--seconds 5]

Seeds one channel with N projects of one wheel each plus one project ("bigproject") with F files
(records as uploads make them, inserted directly), times the python family's incremental index alone
(one upload applied to the N projects, then its pages and the root list rebuilt), starts
`taipan serve`, uploads a real wheel three times with twine's protocol and polls until the project's
JSON page and the root page list it; then wrk (-t2 -c32) against the warm HTML and JSON pages of
"bigproject" and a 304 revalidation, and the same bytes from nginx in the same run. With nginx, also
a passive python_simple mirror of --mirror-projects projects from a static PEP 503 tree, synced and
re-run with nothing changed upstream.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import Nginx, Server, emit, have, seed_rows, wrk  # noqa: E402

from pydists import build_wheel  # noqa: E402
from taipan.domain.families.python import SimpleIndex  # noqa: E402
from taipan.domain.repodata import record_bytes  # noqa: E402

JSON = "application/vnd.pypi.simple.v1+json"


def static_index(root: Path, projects: int, files: int = 3) -> None:
    """A PEP 503 tree of N projects with F wheels each, as nginx serves it (HTML, ETags)."""
    simple = root / "simple"
    simple.mkdir(parents=True)
    (simple / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "".join(
        f'<a href="mproject{i:05d}/">mproject{i:05d}</a>\n' for i in range(projects)) + "</body></html>\n")
    for i in range(projects):
        d = simple / f"mproject{i:05d}"
        d.mkdir()
        links = "".join(f'<a href="../../files/mproject{i:05d}-1.{k}-py3-none-any.whl#sha256={i * 10 + k:064x}" '
                        f'data-requires-python="&gt;=3.8">mproject{i:05d}-1.{k}-py3-none-any.whl</a>\n'
                        for k in range(files))
        (d / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")


def mirror_sync(server: Server, home: Path, projects: int) -> dict:
    """A passive python_simple mirror of N projects from nginx, then a re-run with nothing changed."""
    static_index(home / "upstream", projects)
    nginx = Nginx(home / "upstream")
    out: dict = {"mirror_projects": projects}
    try:
        with httpx.Client(base_url=f"{server.url}/api", headers={"X-Auth": server.token()}, timeout=60) as c:
            c.post("/channels", json={"name": "pymirror"}).raise_for_status()

            def wait() -> dict:
                while True:
                    m = c.get("/channels/pymirror/mirrors/up").json()
                    if m["state"] in ("completed", "failed", "stopped"):
                        return m
                    time.sleep(0.05)

            t0 = time.perf_counter()
            c.post("/channels/pymirror/mirrors", json={
                "mirror_name": "up", "mirror_type": "python_simple", "mirror_mode": "passive",
                "source_root": f"{nginx.url}/simple/", "run_now": True}).raise_for_status()
            m = wait()
            out["first_sync_s"] = round(time.perf_counter() - t0, 2)
            out["first_sync_state"] = m["state"]
            out["files_published"] = m["sync_state"]["count"].get("passive")
            t0 = time.perf_counter()
            c.put("/channels/pymirror/mirrors/up", json={"run_now": True}).raise_for_status()
            m = wait()
            out["rerun_unchanged_s"] = round(time.perf_counter() - t0, 2)
            out["rerun_upstream_unchanged"] = bool(m["sync_state"].get("upstream_unchanged"))
    finally:
        nginx.stop()
    return out


def record(project: str, i: int) -> tuple[str, dict]:
    version = f"{1 + i // 100}.{i % 100}"
    fn = f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
    return fn, {"name": project, "version": version, "filename": fn, "packagetype": "bdist_wheel",
                "sha256": f"{i:064x}", "md5": f"{i:032x}", "size": 10000 + i, "requires_python": ">=3.8",
                "metadata_sha256": f"{i + 1:064x}", "upload_time": "2026-01-01T00:00:00.000000Z"}


def all_records(projects: int, files: int) -> list[tuple[str, str, dict]]:
    out = [(f"project{i:05d}", *record(f"project{i:05d}", i)) for i in range(projects)]
    out += [("bigproject", *record("bigproject", i)) for i in range(files)]
    return out


def seed(home: Path, channel: str, rows_in: list[tuple[str, str, dict]]) -> None:
    def rows(channel_id: str) -> Iterator[dict]:
        for i, (name, fn, rec) in enumerate(rows_in):
            yield {"id": f"{i:08d}-0000-0000-0000-000000000000", "channel_id": channel_id, "family": "python",
                   "name": name, "version": rec["version"], "subdir": "simple", "filename": fn,
                   "ckey": f"simple/{name}/{fn}", "sha256": rec["sha256"], "md5": rec["md5"],
                   "size": rec["size"], "record": record_bytes(rec).decode(),
                   "meta": {"METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {rec['version']}\n"}}

    seed_rows(home, channel, rows)


def index_rebuild(records: list[tuple[str, str, dict]]) -> dict:
    index = SimpleIndex("simple")
    t0 = time.perf_counter()
    index.apply({fn: (name, record_bytes(rec)) for name, fn, rec in records})
    first = index.build(None)
    load_s = time.perf_counter() - t0
    times_new, times_big = [], []
    for k in range(5):
        fn, rec = record(f"newproject{k}", k)
        t0 = time.perf_counter()
        index.apply({fn: (f"newproject{k}", record_bytes(rec))})
        first = index.build(first)
        times_new.append(round(time.perf_counter() - t0, 4))
        fn, rec = record("bigproject", 100_000 + k)
        t0 = time.perf_counter()
        index.apply({fn: ("bigproject", record_bytes(rec))})
        first = index.build(first)
        times_big.append(round(time.perf_counter() - t0, 4))
    return {"index_load_s": round(load_s, 3), "rebuild_new_project_s": times_new,
            "rebuild_2000_file_project_s": times_big,
            "big_page_html_kb": round(len(first.files["bigproject/index.html"]) / 1e3, 1),
            "big_page_json_kb": round(len(first.files["bigproject/index.json"]) / 1e3, 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--projects", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=2_000)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--mirror-projects", type=int, default=1_000)
    args = ap.parse_args()
    records = all_records(args.projects, args.files)
    results: dict = {"projects": args.projects, "big_project_files": args.files, **index_rebuild(records)}
    home = Path(tempfile.mkdtemp(prefix="taipan-bench-pypi-"))
    t0 = time.perf_counter()
    seed(home, "pybig", records)
    results["seed_s"] = round(time.perf_counter() - t0, 2)
    server = Server(home)
    try:
        token = server.token()
        base = f"{server.url}/api/repo/pybig/simple"
        t0 = time.perf_counter()
        httpx.get(f"{base}/", timeout=120).raise_for_status()
        results["cold_first_page_s"] = round(time.perf_counter() - t0, 3)
        latencies = []
        for attempt in range(3):
            wheel = build_wheel(home / "dists", f"newcomer{attempt}", "1.0")
            t0 = time.perf_counter()
            r = httpx.post(f"{server.url}/api/repo/pybig/", headers={"X-Auth": token},
                           files={"content": (wheel.name, wheel.read_bytes())},
                           data={":action": "file_upload", "filetype": "bdist_wheel"})
            r.raise_for_status()
            upload_s = time.perf_counter() - t0
            while True:
                page = httpx.get(f"{base}/newcomer{attempt}/", headers={"Accept": JSON})
                root = httpx.get(f"{base}/")
                if page.status_code == 200 and wheel.name in page.text and f"newcomer{attempt}/" in root.text:
                    break
            latencies.append({"upload_s": round(upload_s, 3), "visible_s": round(time.perf_counter() - t0, 3)})
        results["upload_to_visible"] = latencies
        results["server_rss_mb"] = round(server.rss_mb(), 1)
        if have("nginx") and args.mirror_projects:
            results.update(mirror_sync(server, home, args.mirror_projects))
        if have("wrk"):
            page_url = f"{base}/bigproject/"
            html_etag = httpx.get(page_url, headers={"Accept-Encoding": "identity"}).headers["etag"]
            results["taipan_html_rps"] = wrk(page_url, seconds=args.seconds)
            results["taipan_json_rps"] = wrk(page_url, seconds=args.seconds, headers={"Accept": JSON})
            results["taipan_304_rps"] = wrk(page_url, seconds=args.seconds, headers={"If-None-Match": html_etag})
            if have("nginx"):
                root_dir = home / "static" / "pybig" / "simple" / "bigproject"
                root_dir.mkdir(parents=True)
                (root_dir / "index.html").write_bytes(httpx.get(page_url).content)
                (root_dir / "index.json").write_bytes(httpx.get(page_url, headers={"Accept": JSON}).content)
                nginx = Nginx(home / "static")
                try:
                    url = f"{nginx.url}/pybig/simple/bigproject/"
                    n_etag = httpx.get(url).headers["etag"]
                    results["nginx_html_rps"] = wrk(url, seconds=args.seconds)
                    results["nginx_json_rps"] = wrk(url + "index.json", seconds=args.seconds)
                    results["nginx_304_rps"] = wrk(url, seconds=args.seconds, headers={"If-None-Match": n_etag})
                finally:
                    nginx.stop()
                for k in ("html", "json", "304"):
                    results[f"ratio_{k}"] = round(results[f"taipan_{k}_rps"] / results[f"nginx_{k}_rps"], 3)
    finally:
        server.stop()
    emit(results)


if __name__ == "__main__":
    main()
