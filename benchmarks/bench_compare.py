"""Taipan against nginx and quetz 0.10.4 on the same channel, at each size, in one pass (issue 13's table).

    .venv/bin/python benchmarks/bench_compare.py [--sizes 10000,100000,1000000] [--seconds 4] [--runs 3] > out.json

For each size N, the same N synthetic noarch records (`common.synthetic_records`, 10,000 names) plus the
same real packages (a 1 MiB package, a chain for py-rattler, three newcomers) go into:

- Taipan: rows inserted into its database (`seed_channel`), real packages through its upload API,
  served by `taipan serve` with its default HTTP server and `--workers` processes (default 2, as many
  as the nginx worker processes it is compared with; RSS is reported in all and per process);
- quetz 0.10.4, in its own venv (`$XDG_CACHE_HOME/taipan-bench/quetz-venv`, made with the pins of
  issue 13 when missing), started as `quetz run <dir> --copy-conf dev_config.toml --dev` with logging at
  WARNING: real packages through its upload endpoint while the channel is small, then the N rows
  inserted into its SQLite database with its own models; the newcomers' uploads then regenerate its
  whole index (repodata.json, .gz, .bz2), which is what every quetz upload does;
- nginx (sendfile, gzip_static): a static tree of what Taipan serves (its repodata.json and .zst bytes,
  gzip at its level, CEP-16 shards written with its encoder, `taipan.domain.repodata`).

Then every figure that applies: wrk -t2 -c32 rates (medians of --runs, the three servers interleaved
run by run), upload -> visible in repodata.json, py-rattler solve + install (bench_install's
`compare_installs`: each server's first run after the uploads, then the median of --install-runs with
the servers in rotating order), server
RSS after the load and the first GET after a restart. A figure a server does not offer (no shards, no
304, no Range) is reported as such with what it answered, never as a number. Every step is bounded by
--step-timeout. JSON on stdout; progress and, after each size, its Markdown
table on stderr.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Protocol

import httpx
import msgpack
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from bench_index import build_pkg, unzst  # noqa: E402
from bench_install import build_chain, compare_installs  # noqa: E402
from bench_packages import build_package  # noqa: E402
from common import Nginx, Server, emit, free_port, have, seed_channel, synthetic_records, tree_rss, tree_rss_mb, wrk  # noqa: E402

CHANNEL = "big"
QUETZ_PINS = ["quetz-server==0.10.4", "fastapi<0.110", "starlette<0.37", "sqlalchemy<2.1", "typer<0.10",
              "click<8.2"]
QUETZ_CONFIG = """[sqlalchemy]
database_url = "sqlite:///{db}"

[session]
secret = "{secret}"
https_only = false

[logging]
level = "WARNING"

[local_store]
redirect_enabled = false

[plugins]
enabled = []

[mirroring]
batch_length = 10
"""
# Run by quetz's own interpreter: `setup KEY` makes an owner with API key KEY and the public channel;
# `rows FILE` inserts the records of FILE (one "filename<TAB>record json" per line) with their packages.
QUETZ_SEED = """
import json, sys, uuid
from sqlalchemy import insert
from quetz.database import get_session
from quetz.db_models import (ApiKey, Channel, ChannelMember, Identity, Package, PackageFormatEnum,
                             PackageVersion, Profile, User)

db_url, action, arg, channel = sys.argv[1:5]
db = get_session(db_url)
if action == "setup":
    user = User(id=uuid.uuid4().bytes, username="bench", role="owner")
    user.identities.append(Identity(provider="dummy", identity_id="bench", username="bench"))
    user.profile = Profile(name="bench", avatar_url="/avatar.jpg")
    ch = Channel(name=channel, description="benchmark", private=False)
    db.add_all([user, ch, ChannelMember(channel=ch, user=user, role="owner"),
                ApiKey(key=arg, description="bench", user=user, owner=user)])
else:
    owner = db.query(User).filter(User.username == "bench").one().id
    names = {n for (n,) in db.query(Package.name).filter(Package.channel_name == channel)}
    versions = []

    def flush():
        db.execute(insert(PackageVersion), versions)
        versions.clear()

    with open(arg) as f:
        for line in f:
            fn, info = line.rstrip("\\n").split("\\t", 1)
            rec = json.loads(info)
            if rec["name"] not in names:
                names.add(rec["name"])
                db.execute(insert(Package), [{"name": rec["name"], "channel_name": channel, "summary": "",
                                              "description": "", "platforms": rec["subdir"]}])
            versions.append({"id": uuid.uuid4().bytes, "channel_name": channel, "package_name": rec["name"],
                             "package_format": PackageFormatEnum.conda, "platform": rec["subdir"],
                             "version": rec["version"], "build_string": rec["build"],
                             "build_number": rec["build_number"], "size": rec["size"], "filename": fn,
                             "info": info, "uploader_id": owner, "version_order": 0, "download_count": 0})
            if len(versions) == 5000:
                flush()
    if versions:
        flush()
db.commit()
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def wait_until(ok: Callable[[], bool], timeout: float, what: str, pause: float = 0.1) -> float:
    """Seconds until ok() holds; TimeoutError after `timeout`."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        try:
            if ok():
                return time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(pause)
    raise TimeoutError(f"{what}: not within {timeout:.0f} s")


class Target(Protocol):
    name: str

    @property
    def channel_url(self) -> str: ...
    def rss_mb(self) -> float: ...
    def restart(self) -> None: ...
    def stop(self) -> None: ...


class Taipan:
    name = "taipan"

    def __init__(self, home: Path, workers: int) -> None:
        self.home, self.workers = home, workers
        self.server = Server(home, workers=workers)
        self.token = self.server.token()

    @property
    def channel_url(self) -> str:
        return f"{self.server.url}/api/repo/{CHANNEL}"

    def upload(self, pkg: Path) -> None:
        httpx.post(f"{self.server.url}/api/channels/{CHANNEL}/artifacts", headers={"X-Auth": self.token},
                   files={"content": (pkg.name, pkg.read_bytes())}, data={"filetype": "conda1"},
                   timeout=300).raise_for_status()

    def rss_mb(self) -> float:
        return self.server.rss_mb()

    def rss_worker_mb(self) -> float:
        return tree_rss(self.server.proc.pid)[1]

    def restart(self) -> None:
        self.server.stop()
        self.server = Server(self.home, workers=self.workers)

    def stop(self) -> None:
        self.server.stop()


class StaticNginx:
    name = "nginx"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nginx = Nginx(root)

    @property
    def channel_url(self) -> str:
        return f"{self.nginx.url}/{CHANNEL}"

    def rss_mb(self) -> float:
        return tree_rss_mb(self.nginx.proc.pid)

    def restart(self) -> None:
        self.nginx.stop()
        self.nginx = Nginx(self.root)

    def stop(self) -> None:
        if self.nginx.proc.poll() is None:
            self.nginx.stop()


class Quetz:
    """quetz on a free port: `quetz run` creates the deployment (--dev), `quetz start` restarts it."""

    name = "quetz"

    def __init__(self, venv: Path, root: Path, timeout: float) -> None:
        self.venv, self.root, self.timeout = venv, root, timeout
        self.dep, self.key = root / "quetz", uuid.uuid4().hex
        self.db_url = f"sqlite:///{self.dep / 'quetz.sqlite'}"
        conf = root / "dev_config.toml"
        conf.write_text(QUETZ_CONFIG.format(db=self.dep / "quetz.sqlite", secret=uuid.uuid4().hex))
        self.port = free_port()
        self._start(["run", str(self.dep), "--copy-conf", str(conf), "--dev"])
        self.seed("setup", self.key)

    def _start(self, args: list[str]) -> None:
        with open(self.root / "quetz.log", "ab") as out:
            self.proc = subprocess.Popen(
                [str(self.venv / "bin" / "quetz"), *args, "--host", "127.0.0.1", "--port", str(self.port),
                 "--log-level", "warning"], cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)  # its own group: stop() ends the supervisor and workers with it
        wait_until(lambda: httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200, self.timeout,
                   "quetz start", pause=0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def channel_url(self) -> str:
        return f"{self.url}/get/{CHANNEL}"

    def seed(self, action: str, arg: str) -> None:
        cmd = [str(self.venv / "bin" / "python"), "-W", "ignore", "-c", QUETZ_SEED, self.db_url, action, arg, CHANNEL]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout, cwd=self.root)
        if done.returncode:
            raise RuntimeError(f"quetz seed {action} failed: {done.stderr[-2000:]}")

    def upload(self, pkg: Path) -> None:
        data = pkg.read_bytes()
        httpx.post(f"{self.url}/api/channels/{CHANNEL}/upload/{pkg.name}",
                   params={"sha256": hashlib.sha256(data).hexdigest()}, content=data,
                   headers={"X-API-Key": self.key}, timeout=self.timeout).raise_for_status()

    def rss_mb(self) -> float:
        return tree_rss_mb(self.proc.pid)

    def restart(self) -> None:
        self.stop()
        self._start(["start", str(self.dep)])

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def quetz_venv() -> Path:
    venv = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "taipan-bench" / "quetz-venv"
    if not (venv / "bin" / "quetz").exists():
        log(f"creating {venv}")
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *QUETZ_PINS], check=True, timeout=1800)
    return venv


def repodata(target: Target) -> bytes:
    """repodata.json as a conda client gets it (Accept-Encoding: gzip), decoded."""
    return httpx.get(f"{target.channel_url}/noarch/repodata.json", headers={"Accept-Encoding": "gzip"},
                     timeout=600).content


def records_in(data: bytes) -> int:
    return data.count(b'"build_number"')  # one per record, whatever the JSON layout


def upload_visible(target: Any, pkg: Path, timeout: float) -> tuple[float, float, float]:
    """Seconds from sending the upload until repodata.json lists the file, asked as a conda client
    revalidates its copy: a conditional GET (gzip, If-None-Match with the last ETag) every 20 ms,
    each on a new connection (so that with several workers any of them may answer), and the body
    read only when it changed. (Reading the whole body on every try, as before 2026-12-03, made the
    figure at 1M records mostly the time to send 24 MB.) Two times: when the answer that lists it
    began (its headers: the server serves the new index), and when its body was received and
    decompressed (what the client waits for in all; the body's transfer is ``fetch_repodata``'s
    figure, which nginx's copy of the same file anchors); and first, when the upload was answered."""
    url = f"{target.channel_url}/noarch/repodata.json"
    gz = {"Accept-Encoding": "gzip"}
    answered = 0.0
    with httpx.Client(timeout=600, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        etag = client.head(url, headers=gz).headers.get("etag")

        def listed() -> bool:
            nonlocal etag, answered
            headers = {**gz, **({"If-None-Match": etag} if etag else {})}
            with client.stream("GET", url, headers=headers) as r:
                if r.status_code == 304:
                    return False
                began = time.perf_counter() - t0
                etag = r.headers.get("etag")
                if pkg.name.encode() in r.read():
                    answered = began
                    return True
                return False

        t0 = time.perf_counter()
        target.upload(pkg)
        posted = time.perf_counter() - t0
        wait_until(listed, timeout - posted, f"{target.name}: {pkg.name} visible", pause=0.02)
        return round(posted, 3), round(answered, 3), round(time.perf_counter() - t0, 3)


def fetch_repodata(target: Any) -> float:
    """Seconds one client takes to receive the whole repodata.json with gzip and decompress it, on a
    new connection: the part of upload -> visible that is the index's size, not the server's work."""
    with httpx.Client(timeout=600) as client:
        t0 = time.perf_counter()
        client.get(f"{target.channel_url}/noarch/repodata.json", headers={"Accept-Encoding": "gzip"}).read()
        return round(time.perf_counter() - t0, 3)


def write_static(noarch: Path, taipan: Taipan) -> None:
    """The records Taipan serves as a static tree: its repodata.json and .zst bytes, gzip at its level,
    and CEP-16 shards written with its encoder (`taipan.domain.repodata`)."""
    from taipan.domain import repodata as rd
    from taipan.services.publication import GZIP_LEVEL

    base = f"{taipan.channel_url}/noarch"
    served = httpx.get(f"{base}/repodata.json", headers={"Accept-Encoding": "identity"}, timeout=600).content
    (noarch / "shards").mkdir(parents=True)
    (noarch / "repodata.json").write_bytes(served)
    (noarch / "repodata.json.gz").write_bytes(gzip.compress(served, GZIP_LEVEL, mtime=0))
    (noarch / "repodata.json.zst").write_bytes(httpx.get(f"{base}/repodata.json.zst", timeout=600).content)
    by_name: dict[str, dict[str, Any]] = {}
    data = orjson.loads(served)
    for key in ("packages", "packages.conda"):
        for fn, rec in data[key].items():
            by_name.setdefault(rec["name"], {})[fn] = rec
    del data, served
    digests = {}
    for name, records in by_name.items():
        shard = rd.encode_shard(records)
        digests[name] = hashlib.sha256(shard).digest()
        (noarch / "shards" / f"{digests[name].hex()}.msgpack.zst").write_bytes(shard)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    (noarch / "repodata_shards.msgpack.zst").write_bytes(rd.encode_shard_index("noarch", digests, created))


# figure -> (label, unit); Taipan / other is a ratio of rates for req/s (higher is better), of seconds
# for s (lower is better)
FIGURES = {
    "package_get": ("1 MiB package GET", "req/s"),
    "range": ("Range request on a package", "req/s"),
    "repodata_gzip": ("`repodata.json` with `Accept-Encoding: gzip`", "req/s"),
    "revalidate_304": ("304 revalidation of `repodata.json`", "req/s"),
    "shard": ("one CEP-16 shard", "req/s"),
    "zst": ("`repodata.json.zst`", "req/s"),
    "upload_posted": ("upload request answered (median)", "s"),
    "upload_answered": ("upload -> first answer of a `repodata.json` that lists it (headers; median)", "s"),
    "upload_visible": ("upload -> that `repodata.json` received and decompressed (median)", "s"),
    "fetch_repodata": ("whole `repodata.json` with gzip received and decompressed (median)", "s"),
    "solve_install": ("py-rattler solve + install (median)", "s"),
    "solve_install_first": ("py-rattler solve + install, first run after the uploads", "s"),
    "restart_first_get": ("first `repodata.json` GET after a restart", "s"),
    "rss": ("server RSS after the load (all processes)", "MB"),
    "rss_worker": ("RSS of the largest server process after the load", "MB"),
    "gzip_mb": ("`repodata.json` bytes sent with gzip", "MB"),
    "records": ("records in `repodata.json`", "records"),
}


def load_requests(target: Target, package: str) -> dict[str, tuple[str, dict[str, str]] | str]:
    """Per rate figure: (url, headers) when the server answers it as asked, else what it answered."""
    base = f"{target.channel_url}/noarch"
    gz = {"Accept-Encoding": "gzip"}
    out: dict[str, tuple[str, dict[str, str]] | str] = {
        "package_get": (f"{base}/{package}", {}),
        "range": (f"{base}/{package}", {"Range": "bytes=1000-65535"}),
        "repodata_gzip": (f"{base}/repodata.json", gz),
        "zst": (f"{base}/repodata.json.zst", {})}
    etag = httpx.head(f"{base}/repodata.json", headers=gz, timeout=600).headers.get("etag", "")
    out["revalidate_304"] = (f"{base}/repodata.json", {**gz, "If-None-Match": etag})
    idx = httpx.get(f"{base}/repodata_shards.msgpack.zst", timeout=60)
    if idx.status_code == 200:
        digest = msgpack.unpackb(unzst(idx.content))["shards"]["pkg00000"].hex()
        out["shard"] = (f"{base}/shards/{digest}.msgpack.zst", {})
    else:
        out["shard"] = f"no shard index ({idx.status_code})"
    expected = {"range": 206, "revalidate_304": 304}
    for key, req in out.items():
        if isinstance(req, str):
            continue
        with httpx.stream("GET", req[0], headers=req[1], timeout=600) as r:
            want = expected.get(key, 200)
            if r.status_code != want:
                out[key] = f"answers {r.status_code}" + (" with the whole file" if r.status_code == 200 else "")
            elif key == "repodata_gzip" and r.headers.get("content-encoding") != "gzip":
                out[key] = "sends it uncompressed"
    return out


def measure_size(n: int, args: argparse.Namespace, venv: Path | None, work: Path) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix=f"n{n}-", dir=work))
    res: dict[str, Any] = {"records": n, "loadavg_before": os.getloadavg(), "seed_s": {}, "notes": {}}
    figures: dict[str, dict[str, Any]] = {k: {} for k in FIGURES}
    big = build_package(root / "big")
    chain = build_chain(root / "chain", args.chain)
    newcomers = [build_pkg(root / f"new{i}", f"newcomer{i}") for i in range(args.runs)]
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, root, ignore_errors=True)
        taipan = seed_taipan(n, root, [big, *chain], newcomers, args, res, figures, stack)
        log(f"{n}: static tree for nginx")
        write_static(root / "static" / CHANNEL / "noarch", taipan)
        for pkg in [big, *chain]:
            shutil.copy(pkg, root / "static" / CHANNEL / "noarch" / pkg.name)
        targets: list[Any] = [taipan, StaticNginx(root / "static")]
        stack.callback(targets[1].stop)
        if venv is not None:
            quetz = seed_quetz(n, root, venv, [big, *chain], newcomers, args, res, figures, stack)
            if quetz is not None:
                targets.append(quetz)
        for t in targets:
            figures["records"][t.name] = records_in(repodata(t))
        if args.only_installs:
            measure_installs(targets, args, figures, root)
            res["loadavg_after"] = os.getloadavg()
            res["figures"] = summarise({k: v for k, v in figures.items() if v})
            return res
        for _ in range(args.runs):
            for t in targets:
                figures["fetch_repodata"].setdefault(t.name, []).append(fetch_repodata(t))
        measure_loads(targets, big.name, args, figures, res)
        measure_installs(targets, args, figures, root)
        for t in targets:
            figures["rss"][t.name] = round(t.rss_mb(), 1)
            if isinstance(t, Taipan):
                figures["rss_worker"][t.name] = round(t.rss_worker_mb(), 1)
        for t in targets:
            log(f"{n}: restarting {t.name}")
            t.restart()
            t0 = time.perf_counter()
            repodata(t)
            figures["restart_first_get"][t.name] = round(time.perf_counter() - t0, 3)
    res["loadavg_after"] = os.getloadavg()
    res["figures"] = summarise(figures)
    return res


def seed_taipan(n: int, root: Path, real: list[Path], newcomers: list[Path], args: argparse.Namespace,
                res: dict[str, Any], figures: dict[str, dict[str, Any]], stack: ExitStack) -> Taipan:
    """Taipan with the N rows, then the real packages uploaded; the newcomers' upload -> visible."""
    log(f"{n}: seeding Taipan")
    t0 = time.perf_counter()
    seed_channel(root / "taipan", CHANNEL, "noarch", n)
    res["seed_s"]["taipan"] = round(time.perf_counter() - t0, 2)
    taipan = Taipan(root / "taipan", args.workers)
    stack.callback(taipan.stop)
    t0 = time.perf_counter()
    repodata(taipan)
    res["taipan_first_get_after_seed_s"] = round(time.perf_counter() - t0, 3)
    for pkg in real:
        taipan.upload(pkg)
    times = [upload_visible(taipan, p, args.step_timeout) for p in newcomers]
    figures["upload_posted"]["taipan"] = [p for p, _, _ in times]
    figures["upload_answered"]["taipan"] = [a for _, a, _ in times]
    figures["upload_visible"]["taipan"] = [v for _, _, v in times]
    return taipan


def seed_quetz(n: int, root: Path, venv: Path, real: list[Path], newcomers: list[Path], args: argparse.Namespace,
               res: dict[str, Any], figures: dict[str, dict[str, Any]], stack: ExitStack) -> Quetz | None:
    """quetz with the real packages uploaded, then the N rows; None (and why) if its index does not come."""
    log(f"{n}: quetz: real packages, then {n} rows")
    quetz = Quetz(venv, root, args.step_timeout)
    stack.callback(quetz.stop)
    for pkg in real:
        quetz.upload(pkg)
    wait_until(lambda: records_in(repodata(quetz)) == len(real), args.step_timeout, "quetz: real packages")
    rows = root / "rows.tsv"
    with open(rows, "wb") as f:
        for fn, rec in synthetic_records("noarch", n):
            f.write(fn.encode() + b"\t" + orjson.dumps(rec) + b"\n")
    t0 = time.perf_counter()
    quetz.seed("rows", str(rows))
    res["seed_s"]["quetz"] = round(time.perf_counter() - t0, 2)
    rows.unlink()
    times: list[tuple[float, float, float]] = []
    try:
        for pkg in newcomers:
            if times and times[0][2] > args.slow_upload:
                res["notes"]["quetz_upload"] = f"one upload only: it took {times[0][2]:.0f} s (> --slow-upload)"
                break
            log(f"{n}: quetz upload {pkg.name}")
            times.append(upload_visible(quetz, pkg, args.step_timeout))
    except (TimeoutError, httpx.TimeoutException) as e:  # its upload answers after its reindex
        res["notes"]["quetz"] = f"index of {n} records not served: {e}"
        quetz.stop()
        return None
    figures["upload_posted"]["quetz"] = [p for p, _, _ in times]
    figures["upload_answered"]["quetz"] = [a for _, a, _ in times]
    figures["upload_visible"]["quetz"] = [v for _, _, v in times]
    return quetz


def measure_loads(targets: list[Any], package: str, args: argparse.Namespace,
                  figures: dict[str, dict[str, Any]], res: dict[str, Any]) -> None:
    requests = {t.name: load_requests(t, package) for t in targets}
    for t in targets:
        if not isinstance(requests[t.name]["repodata_gzip"], str):
            with httpx.stream("GET", f"{t.channel_url}/noarch/repodata.json", headers={"Accept-Encoding": "gzip"},
                              timeout=600) as r:
                figures["gzip_mb"][t.name] = round(sum(len(c) for c in r.iter_raw()) / 1e6, 2)
    for key in ("package_get", "range", "repodata_gzip", "revalidate_304", "shard", "zst"):
        rates: dict[str, list[float]] = {}
        for run in range(args.runs):
            for t in targets:
                req = requests[t.name][key]
                if isinstance(req, str):
                    figures[key][t.name] = req
                    continue
                log(f"{res['records']}: wrk {key} {t.name} run {run + 1}")
                rates.setdefault(t.name, []).append(wrk(req[0], seconds=args.seconds, headers=req[1],
                                                            timeout=60))
        for name, values in rates.items():
            figures[key][name] = values


def measure_installs(targets: list[Any], args: argparse.Namespace, figures: dict[str, dict[str, Any]],
                     root: Path) -> None:
    measured = compare_installs({t.name: t.channel_url for t in targets}, args.install_runs, root,
                                timeout=args.step_timeout, log=log)
    figures["solve_install_first"].update(measured["first"])
    figures["solve_install"].update(measured["runs"])


def summarise(figures: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per figure: each server's runs and median (or why there is none) and Taipan's ratios."""
    out: dict[str, dict[str, Any]] = {}
    for key, per in figures.items():
        row: dict[str, Any] = {"label": FIGURES[key][0], "unit": FIGURES[key][1]}
        for name in ("taipan", "nginx", "quetz"):
            v = per.get(name)
            if isinstance(v, list):
                row[name] = round(statistics.median(v), 3)
                row[f"{name}_runs"] = v
            elif v is not None:
                row[name] = v
        for other in ("nginx", "quetz"):
            a, b = row.get("taipan"), row.get(other)
            if isinstance(a, int | float) and isinstance(b, int | float) and a and b:
                row[f"taipan_per_{other}"] = round(a / b, 3)
        out[key] = row
    return out


def number(v: float, unit: str) -> str:
    if unit == "req/s" and v == 0:
        return "0 (no answer completed within a run)"
    return f"{v:,.0f}" if unit in ("req/s", "records") else f"{v:,.1f}" if unit == "MB" else f"{v:.3f}"


def markdown(res: dict[str, Any]) -> str:
    lines = [f"N = {res['records']:,} records (load {res['loadavg_before'][0]:.2f} before, "
             f"{res['loadavg_after'][0]:.2f} after)", "",
             "| figure | Taipan | nginx | quetz | Taipan / nginx | Taipan / quetz |", "|---|---|---|---|---|---|"]
    for row in res["figures"].values():
        cells = [f"{row['label']} ({row['unit']})"]
        for name in ("taipan", "nginx", "quetz"):
            v = row.get(name, res["notes"].get(name, "—") if name == "quetz" else "—")
            cells.append(number(v, row["unit"]) if isinstance(v, int | float) else str(v))
        cells += [f"{row[k]:.2f}×" if k in row else "—" for k in ("taipan_per_nginx", "taipan_per_quetz")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--seconds", type=int, default=4, help="wrk duration of each run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chain", type=int, default=20, help="packages in the py-rattler chain (two versions each)")
    ap.add_argument("--install-runs", type=int, default=7,
                    help="py-rattler solve + install runs per server after its first (median)")
    ap.add_argument("--step-timeout", type=float, default=900)
    ap.add_argument("--slow-upload", type=float, default=120,
                    help="after a quetz upload -> visible slower than this, do not repeat it")
    ap.add_argument("--no-quetz", action="store_true")
    ap.add_argument("--only-installs", action="store_true",
                    help="after the seeding and the uploads, only py-rattler solve + install (e.g. with "
                    "--install-runs 30: each run's time varies by a factor of two or more)")
    ap.add_argument("--workers", type=int, default=2,
                    help="taipan serve --workers (default 2: the nginx it is compared with runs 2 worker processes)")
    args = ap.parse_args()
    if not (have("wrk") and have("nginx")):
        sys.exit("needs wrk and nginx (apt-get install wrk nginx)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: every server started is stopped
    venv = None if args.no_quetz else quetz_venv()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    results: dict[str, Any] = {"commit": commit, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                               "wrk": f"-t2 -c32 -d{args.seconds}s, median of {args.runs}", "sizes": []}
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as work:
        for n in (int(s) for s in args.sizes.split(",")):
            results["sizes"].append(measure_size(n, args, venv, Path(work)))
            log("\n" + markdown(results["sizes"][-1]) + "\n")
    emit(results)


if __name__ == "__main__":
    main()
