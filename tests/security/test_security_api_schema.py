"""The published API schema is true: schemathesis (every check but response times) against a live server ends with no
server error and no conformance failure, and every route's path parameters are declared."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

CONFIG = Path(__file__).with_name("schemathesis.toml")
# The run is a fixed amount of work (MAX_EXAMPLES per operation and phase, one pass of each phase), the
# same on a quiet and on a loaded machine: a time budget would test less the busier the machine is.
# TAIPAN_SCHEMATHESIS_MAX_TIME (seconds) explores longer (fuzzing and stateful phases repeat until it is
# spent), and a different seed explores differently (TAIPAN_SCHEMATHESIS_SEED).
MAX_TIME = os.environ.get("TAIPAN_SCHEMATHESIS_MAX_TIME")
MAX_EXAMPLES = os.environ.get("TAIPAN_SCHEMATHESIS_MAX_EXAMPLES", "25")
SEED = os.environ.get("TAIPAN_SCHEMATHESIS_SEED", "20261203")
# Every check of schemathesis but max_response_time, which `--checks all` turns on with a 10 s limit:
# timings belong in benchmarks/, and a loaded machine may answer slowly. Nor does the run care how
# fast hypothesis generates data (its too_slow health check).
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "negative_data_rejection",
          "positive_data_acceptance", "missing_required_header", "unsupported_method", "allow_header_conformance",
          "use_after_free", "ensure_resource_availability", "ignored_auth", "object_level_authorization")
NOT_TIMED = ("--checks", ",".join(CHECKS), "--suppress-health-check", "too_slow")
# The operations whose schema has been made exact (every check holds for them). An endpoint added
# later is covered by the generic completion (test_every_path_parameter_is_declared) at once, and
# joins this run once its request constraints say what its handler checks: add its path here.
CHECKED_PATHS = (
    r"/api/auth/login", r"/api/logout",
    r"/api/account(/(me|channels|scopes|token-info|tokens(/\{token_id\})?))?",
    r"/api/channels", r"/api/artifacts", r"/api/mirrors",
    r"/api/channels/\{ch\}(/subchannels/\{sub\})?"
    r"(/(subchannels|history|artifacts|artifacts/bulk|artifacts/\{family\}/\{package\}/files"
    r"|mirrors(/\{mirror_id\}(/stop_mirror_sync)?)?))?",
    r"/api/channels/\{ch\}/\{sub\}/artifacts",
    r"/api/repo/\{ch\}(/\{sub\})?/?",
    r"/api/system/(settings|blob_cleanup|version)", r"/api/diagnose/blobs",
    r"/api/cves(/(mappings(/\{product\})?|\{cve_id\}(/files)?))?",
    r"/api/channels/\{ch\}(/subchannels/\{sub\})?/artifacts/\{family\}/\{package\}/yank",
    r"/api/reports/artifact_downloads",
)


def test_every_path_parameter_is_declared(taipan_server):
    schema = httpx.get(taipan_server.api + "/openapi.json").json()
    missing = []
    for path, item in schema["paths"].items():
        names = set(re.findall(r"{([^}:]+)", path))
        for method, op in item.items():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            if names - declared:
                missing.append(f"{method.upper()} {path}: {sorted(names - declared)}")
            errors = {code for code in op["responses"] if code.startswith(("4", "5"))}
            assert {"400", "401", "404", "422", "500"} <= errors, f"{method} {path} documents {errors}"
            for code in errors:
                body = op["responses"][code].get("content", {}).get("application/json")
                assert body is not None, (method, path, code)
                assert body["schema"].get("$ref") == "#/components/schemas/Error", (method, path, code)
    assert not missing, missing
    assert len(schema["paths"]) > 30


def test_schemathesis_finds_no_failure(server_factory, conda_packages, tmp_path):
    server = server_factory()
    token = server.admin_token()
    # The channel schemathesis.toml points a share of the requests at (the rest are generated).
    with server.client(token) as c:
        c.post("/channels", json={"name": "sandbox"}).raise_for_status()
        c.post("/channels/sandbox/subchannels", json={"name": "sub"}).raise_for_status()
        hello = conda_packages["hello"]
        c.post("/channels/sandbox/artifacts", files={"content": (hello.name, hello.read_bytes())}).raise_for_status()
    report = tmp_path / "report.json"
    cmd = [str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "run",
           server.api + "/openapi.json", *NOT_TIMED, "--header", f"X-Auth: {token}",
           "--workers", "1", "--seed", SEED, "--max-examples", MAX_EXAMPLES,
           *(("--max-time", MAX_TIME) if MAX_TIME else ()),
           "--include-path-regex", "^(" + "|".join(CHECKED_PATHS) + ")$",
           "--report", "json", "--report-json-path", str(report), "--no-color", "--output-truncate", "true"]
    try:
        # A safety net against a hung run, far above what the run takes on a loaded machine.
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=int(MAX_TIME or 0) + 900, cwd=tmp_path)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"schemathesis did not finish in time:\n{exc.stdout}")
    out = run.stdout + run.stderr
    summary = out[out.rfind("SUMMARY"):] if "SUMMARY" in out else out[-4000:]
    assert run.returncode == 0, out[-20000:]
    assert "Tested:" in summary, summary
    # The run's credential still works: the operations were tested as an admin throughout.
    assert httpx.get(server.api + "/account", headers={"X-Auth": token}).status_code == 200
    data = json.loads(report.read_text()) if report.exists() else {}
    assert not data.get("failures"), data.get("failures")
