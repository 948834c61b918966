"""CVE import and matching at NVD size: a synthetic NVD API 2.0 feed (default 300,000 records) imported
with `taipan cve import`, then matched against 1,000,000 files with `taipan cve match`.

    .venv/bin/python benchmarks/bench_cve.py [--cves 300000] [--files 1000000] [--products 40000]

The feed is written as one .json.gz (records like NVD's: descriptions, v3.1 and v2 metrics, 1-3
configurations of application CPEs with version ranges or exact versions, some OS CPEs and AND
nodes). The files are inserted directly into one SQLite database: a share of them (default 30%) carry
names of affected products (through the fallback product name), the rest names no CVE mentions.
Import and match each run in their own process; wall time, CPU time and peak RSS of each are
reported as JSON.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import emit  # noqa: E402

CHILD = ("import resource, sys\nfrom taipan.admin.main import main\nrc = main(sys.argv[1:])\n"
         "u = resource.getrusage(resource.RUSAGE_SELF)\n"
         "print('MAXRSS', u.ru_maxrss, u.ru_utime + u.ru_stime, file=sys.stderr)\nsys.exit(rc)\n")


def version(rng: random.Random) -> str:
    return f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}"


def cpe(vendor: str, product: str, ver: str = "*", part: str = "a") -> str:
    return f"cpe:2.3:{part}:{vendor}:{product}:{ver}:*:*:*:*:*:*:*"


def nvd_record(i: int, rng: random.Random, products: int, prefix: str = "prod") -> dict:
    configs = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        p = rng.randrange(products)
        vendor, product = f"vendor{p}", f"{prefix}{p}"
        matches = []
        for _ in range(rng.choice((1, 1, 2))):
            kind = rng.random()
            if kind < 0.6:
                lo, hi = sorted((version(rng), version(rng)))
                matches.append({"vulnerable": True, "criteria": cpe(vendor, product), "versionStartIncluding": lo,
                                "versionEndExcluding": hi, "matchCriteriaId": "X"})
            elif kind < 0.85:
                matches.append({"vulnerable": True, "criteria": cpe(vendor, product),
                                "versionEndIncluding": version(rng), "matchCriteriaId": "X"})
            else:
                matches.append({"vulnerable": True, "criteria": cpe(vendor, product, version(rng)),
                                "matchCriteriaId": "X"})
        node = {"operator": "OR", "negate": False, "cpeMatch": matches}
        if rng.random() < 0.1:
            platform = {"operator": "OR", "negate": False, "cpeMatch": [
                {"vulnerable": False, "criteria": cpe("microsoft", "windows", "-", "o"), "matchCriteriaId": "Y"}]}
            configs.append({"operator": "AND", "nodes": [node, platform]})
        else:
            configs.append({"nodes": [node]})
    if rng.random() < 0.2:
        configs.append({"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [
            {"vulnerable": True, "criteria": cpe("debian", "debian_linux", "11.0", "o"), "matchCriteriaId": "Z"}]}]})
    score = round(rng.uniform(1, 10), 1)
    return {"cve": {
        "id": f"CVE-{2000 + i // 100000}-{i % 100000:05d}{i // 100000}", "sourceIdentifier": "cve@mitre.org",
        "published": "2020-01-01T00:00:00.000", "lastModified": "2024-01-01T00:00:00.000",
        "vulnStatus": "Analyzed",
        "descriptions": [{"lang": "en", "value": f"A flaw in product {i} allows remote attackers to do things "
                                                 "they should not, via crafted input. " * 2}],
        "metrics": {"cvssMetricV31": [{"source": "nvd@nist.gov", "type": "Primary", "cvssData": {
            "version": "3.1", "vectorString": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", "attackVector": "NETWORK",
            "attackComplexity": "LOW", "privilegesRequired": "NONE", "userInteraction": "NONE", "scope": "UNCHANGED",
            "confidentialityImpact": "HIGH", "integrityImpact": "HIGH", "availabilityImpact": "HIGH",
            "baseScore": score, "baseSeverity": "HIGH"}, "exploitabilityScore": 3.9, "impactScore": 5.9}]},
        "weaknesses": [], "configurations": configs}}


def write_feed(path: Path, n: int, products: int, prefix: str = "prod") -> None:
    """``n`` CVEs of products ``<prefix>0`` .. ``<prefix><products - 1>`` (also their package names)."""
    rng = random.Random(1)
    with gzip.open(path, "wt", compresslevel=1) as out:
        head = {"resultsPerPage": n, "startIndex": 0, "totalResults": n, "format": "NVD_CVE", "version": "2.0",
                "timestamp": "2024-01-01T00:00:00.000"}
        out.write(json.dumps(head)[:-1] + ', "vulnerabilities": [')
        for i in range(n):
            if i:
                out.write(",")
            out.write(json.dumps(nvd_record(i, rng, products, prefix)))
        out.write("]}")


def seed_files(db_url: str, n: int, products: int, share: float = 0.3) -> None:
    from sqlalchemy import create_engine, insert

    from taipan.db.migrate import upgrade
    from taipan.db.models import Channel, File

    upgrade(db_url)
    engine = create_engine(db_url)
    rng = random.Random(2)
    subdirs = ("linux-64", "osx-arm64", "win-64", "noarch")
    with engine.begin() as conn:
        conn.execute(insert(Channel), [{"id": "bench", "name": "bench", "path": "bench", "privacy": "public",
                                        "description": "", "frozen": False, "filters": {}, "download_count": 0}])
        batch = []
        for i in range(n):
            name = f"prod{rng.randrange(products)}" if rng.random() < share else f"other{rng.randrange(products)}"
            ver, subdir = version(rng), subdirs[i % 4]
            fn = f"{name}-{ver}-{i}.conda"
            batch.append({"id": f"f{i:09d}", "channel_id": "bench", "family": "conda", "name": name, "version": ver,
                          "subdir": subdir, "filename": fn, "ckey": f"{subdir}/{fn}", "sha256": f"{i:064d}",
                          "md5": f"{i:032d}", "size": 1, "record": "{}", "meta": {}, "state": "active",
                          "download_count": 0})
            if len(batch) == 20_000:
                conn.execute(insert(File), batch)
                batch = []
        if batch:
            conn.execute(insert(File), batch)
    engine.dispose()


def run_child(home: Path, *args: str) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                          env={**os.environ, "TAIPAN_HOME": str(home)})
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    _, rss, cpu = next(line.split() for line in proc.stderr.splitlines() if line.startswith("MAXRSS"))
    out = json.loads(proc.stdout) if proc.stdout.strip() else {}
    return {"seconds": round(seconds, 1), "cpu_seconds": round(float(cpu), 1), "peak_rss_mb": round(int(rss) / 1024),
            "result": out}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cves", type=int, default=300_000)
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--products", type=int, default=40_000)
    ap.add_argument("--affected-share", type=float, default=0.3,
                    help="the share of files named like a product some CVE affects")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cve-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        feed = Path(tmp) / "nvd.json.gz"
        t0 = time.perf_counter()
        write_feed(feed, args.cves, args.products)
        t1 = time.perf_counter()
        seed_files(f"sqlite:///{home / 'taipan.db'}", args.files, args.products, args.affected_share)
        t2 = time.perf_counter()
        imported = run_child(home, "cve", "import", str(feed), "--no-match", "--json")
        reimported = run_child(home, "cve", "import", str(feed), "--no-match", "--json")
        matched = run_child(home, "cve", "match", "--json")
        emit({"cves": args.cves, "files": args.files, "products": args.products,
              "affected_share": args.affected_share,
              "feed_mb": round(feed.stat().st_size / 2**20), "feed_seconds": round(t1 - t0, 1),
              "seed_files_seconds": round(t2 - t1, 1), "import": imported, "reimport": reimported,
              "match": matched})


if __name__ == "__main__":
    main()
