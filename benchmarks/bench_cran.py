"""A CRAN-sized channel: PACKAGES + PACKAGES.gz rebuilt after one upload, and serving PACKAGES.gz
against nginx.

    .venv/bin/python benchmarks/bench_cran.py [--packages 22000] [--seconds 10]

Seeds one channel with N R source packages in src/contrib (records as uploads make them, inserted
directly), times the index rebuild alone (the family's incremental index: one change applied to N
packages, then PACKAGES and PACKAGES.gz built), starts `taipan serve`, uploads a real source package
three times and polls until PACKAGES.gz lists it (then fetches PACKAGES.rds); then wrk (-t2 -c32) against the warm
PACKAGES.gz and a 304 revalidation, and the same bytes from nginx in the same run.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from common import Nginx, Server, emit, have, seed_rows, wrk  # noqa: E402

from taipan.domain import cran  # noqa: E402
from taipan.domain.families.cran import PackagesIndex  # noqa: E402
from taipan.domain.repodata import record_bytes  # noqa: E402


def record(i: int) -> tuple[str, str, dict]:
    name, version = f"pkg{i:05d}", f"{1 + i % 5}.{i % 13}-{i % 3}"
    deps = ", ".join(f"pkg{(i + k) % 22000:05d} (>= 1.0)" for k in (1, 7, 31))
    desc = {"Package": name, "Version": version, "Depends": "R (>= 3.5.0), methods", "Imports": deps,
            "Suggests": "testthat (>= 3.0.0), knitr, rmarkdown", "LinkingTo": "Rcpp" if i % 4 == 0 else "",
            "License": "GPL-2 | GPL-3", "NeedsCompilation": "yes" if i % 4 == 0 else "no",
            "Title": f"Package {name}"}
    pkg = cran.RPackage(name, version, cran.SOURCE_PARTITION, desc, binary=False)
    return name, version, cran.make_record(pkg, md5=f"{i:032x}", sha256=f"{i:064x}", size=10000 + i)


def seed(home: Path, channel: str, n: int) -> None:
    def rows(channel_id: str) -> Iterator[dict]:
        for i in range(n):
            name, version, rec = record(i)
            fn = f"{name}_{version}.tar.gz"
            yield {"id": f"{i:08d}-0000-0000-0000-000000000000", "channel_id": channel_id, "family": "cran",
                   "name": name, "version": version, "subdir": cran.SOURCE_PARTITION, "filename": fn,
                   "ckey": f"src/contrib/{fn}", "sha256": rec["SHA256"], "md5": rec["MD5sum"],
                   "size": rec["size"], "record": record_bytes(rec).decode()}

    seed_rows(home, channel, rows)


def index_rebuild(n: int) -> dict:
    """The family's index alone: load N packages, then one upload applied and PACKAGES(.gz) rebuilt."""
    index = PackagesIndex(cran.SOURCE_PARTITION)
    t0 = time.perf_counter()
    index.apply({f"{name}_{version}.tar.gz": (name, record_bytes(rec)) for name, version, rec in map(record, range(n))})
    first = index.build(None)
    load_s = time.perf_counter() - t0
    times = []
    for k in range(5):
        name, version, rec = record(n + k)
        t0 = time.perf_counter()
        index.apply({f"{name}_{version}.tar.gz": (name, record_bytes(rec))})
        files = index.build(first)
        packages = files.files["PACKAGES"]
        gz = gzip.compress(packages, 6, mtime=0)
        times.append(round(time.perf_counter() - t0, 3))
    pub = type("Pub", (), {"file": lambda self, name: files.files[name]})()
    t0 = time.perf_counter()
    rds = files.lazy["PACKAGES.rds"](pub)
    rds_s = time.perf_counter() - t0
    return {"index_load_s": round(load_s, 3), "rebuild_after_one_upload_s": times,
            "packages_rds_first_request_s": round(rds_s, 3), "packages_rds_mb": round(len(rds) / 1e6, 2),
            "packages_mb": round(len(packages) / 1e6, 2), "packages_gz_mb": round(len(gz) / 1e6, 2)}


def source_package(out: Path, name: str) -> Path:
    path = out / f"{name}_1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for member, data in ((f"{name}/DESCRIPTION", f"Package: {name}\nVersion: 1.0\nLicense: MIT\n".encode()),
                             (f"{name}/NAMESPACE", b""), (f"{name}/R/f.R", b"f <- function() 1\n")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=22_000)
    ap.add_argument("--seconds", type=int, default=10)
    args = ap.parse_args()
    results: dict = {"packages": args.packages, **index_rebuild(args.packages)}
    home = Path(tempfile.mkdtemp(prefix="taipan-bench-cran-"))
    t0 = time.perf_counter()
    seed(home, "rbig", args.packages)
    results["seed_s"] = round(time.perf_counter() - t0, 2)
    server = Server(home)
    try:
        token = server.token()
        base = f"{server.url}/api/repo/rbig/src/contrib"
        t0 = time.perf_counter()
        cold = httpx.get(f"{base}/PACKAGES.gz", timeout=120)
        results["cold_first_gz_s"] = round(time.perf_counter() - t0, 3)
        latencies = []
        for attempt in range(3):
            pkg = source_package(home, f"newcomer{attempt}")
            t0 = time.perf_counter()
            r = httpx.post(f"{server.url}/api/repo/rbig", headers={"X-Auth": token},
                           files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "cran_source_package"})
            r.raise_for_status()
            upload_s = time.perf_counter() - t0
            needle = f"Package: newcomer{attempt}\n".encode()
            while True:  # what R reads: PACKAGES.rds, else PACKAGES.gz (the same publication)
                gz = gzip.decompress(httpx.get(f"{base}/PACKAGES.gz").content)
                if needle in gz:
                    break
            visible_s = time.perf_counter() - t0
            rds = httpx.get(f"{base}/PACKAGES.rds").content
            latencies.append({"upload_s": round(upload_s, 3), "gz_visible_s": round(visible_s, 3),
                              "then_rds_s": round(time.perf_counter() - t0 - visible_s, 3)})
            assert needle.split(b" ")[1].strip() in gzip.decompress(rds)
        results["upload_to_visible"] = latencies
        plain = httpx.get(f"{base}/PACKAGES").content
        assert hashlib.sha256(gz).digest() == hashlib.sha256(plain).digest()
        results["server_rss_mb"] = round(server.rss_mb(), 1)
        del cold
        if have("wrk"):
            etag = httpx.get(f"{base}/PACKAGES.gz").headers["etag"]
            results["taipan_gz_rps"] = wrk(f"{base}/PACKAGES.gz", seconds=args.seconds)
            results["taipan_304_rps"] = wrk(f"{base}/PACKAGES.gz", seconds=args.seconds,
                                            headers={"If-None-Match": etag})
            if have("nginx"):
                root = home / "static" / "rbig" / "src" / "contrib"
                root.mkdir(parents=True)
                (root / "PACKAGES.gz").write_bytes(httpx.get(f"{base}/PACKAGES.gz").content)
                nginx = Nginx(home / "static")
                try:
                    url = f"{nginx.url}/rbig/src/contrib/PACKAGES.gz"
                    n_etag = httpx.get(url).headers["etag"]
                    results["nginx_gz_rps"] = wrk(url, seconds=args.seconds)
                    results["nginx_304_rps"] = wrk(url, seconds=args.seconds, headers={"If-None-Match": n_etag})
                finally:
                    nginx.stop()
                results["ratio_gz"] = round(results["taipan_gz_rps"] / results["nginx_gz_rps"], 3)
                results["ratio_304"] = round(results["taipan_304_rps"] / results["nginx_304_rps"], 3)
    finally:
        server.stop()
    emit(results)


if __name__ == "__main__":
    main()
