"""SBOMs of stored artifacts (issue 12, part 1), fetched with the real `conda-repo sbom` and validated
with the reference tools: spdx-tools for SPDX 2.3, cyclonedx-python-lib's strict validator for CycloneDX 1.6."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cli_harness import Cli
from test_cli_documents import make_documents


def valid_spdx(path: Path) -> dict[str, Any]:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document = parse_file(str(path))
    problems = validate_full_spdx_document(document)
    assert problems == [], [p.validation_message for p in problems]
    return json.loads(path.read_text())


def valid_cyclonedx(path: Path) -> dict[str, Any]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    text = path.read_text()
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, str(error)
    return json.loads(text)


def test_conda_package_sboms(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path],
                             tmp_path: Path) -> None:
    ch = channel("sbom")
    cli.run("upload", "-c", ch, str(conda_packages["hello"]), str(conda_packages["world"]))
    # --ckey: saved in the current directory under the server's name.
    proc = cli.run("sbom", "--channel", ch, "--ckey", "linux-64/world-2.0-h1_0.tar.bz2")
    saved = cli.home / "world-2.0-h1_0.spdx.json"
    assert f"saved to {saved}" in proc.stderr
    doc = valid_spdx(saved)
    main = doc["packages"][0]
    assert (main["name"], main["versionInfo"], main["licenseDeclared"]) == ("world", "2.0", "BSD-3-Clause")
    sha = hashlib.sha256(conda_packages["world"].read_bytes()).hexdigest()
    assert {"algorithm": "SHA256", "checksumValue": sha} in main["checksums"]
    purl = main["externalRefs"][0]["referenceLocator"]
    assert purl.startswith("pkg:conda/world@2.0?build=h1_0&channel=") and "subdir=linux-64" in purl
    deps = {p["SPDXID"]: p["name"] for p in doc["packages"][1:]}
    assert [deps[r["relatedSpdxElement"]] for r in doc["relationships"] if r["relationshipType"] == "DEPENDS_ON"] \
        == ["hello"]
    files = {f["fileName"]: f for f in doc["files"]}
    content = hashlib.sha256(b"world 2.0\n").hexdigest()
    assert {"algorithm": "SHA256", "checksumValue": content} in files["./share/world/world.txt"]["checksums"]
    # --package/--version/--os/--family, CycloneDX, into a directory given with --output.
    out = tmp_path / "boms"
    cli.run("sbom", "--channel", ch, "--package", "hello", "--version", "1.0", "--os", "noarch", "--family", "conda",
            "--format", "cyclonedx", "--output", str(out) + "/")
    bom = valid_cyclonedx(out / "hello-1.0-0.cdx.json")
    component = bom["metadata"]["component"]
    assert (component["name"], component["licenses"]) == ("hello", [{"expression": "MIT"}])
    assert [c["name"] for c in component["components"]] == ["share/hello/hello.txt"]
    assert bom.get("vulnerabilities", []) == []
    # --output naming a file.
    cli.run("sbom", "--channel", ch, "--ckey", "noarch/hello-1.0-0.conda", "--output", str(tmp_path / "h.json"))
    valid_spdx(tmp_path / "h.json")
    # Nothing there: the seed's message, and a non-zero exit.
    proc = cli.run("sbom", "--channel", ch, "--ckey", "noarch/nope-1.0-0.conda", rc=4)
    assert "No SBOM for noarch/nope-1.0-0.conda available" in proc.stderr
    proc = cli.run("sbom", "--channel", ch, "--package", "hello", "--version", "9", "--os", "noarch", rc=4)
    assert "No SBOM for hello 9 (noarch, conda) available" in proc.stderr
    with httpx.Client(base_url=cli.server.api, headers={"X-Auth": cli.token()}) as http:  # type: ignore[attr-defined]
        # conda-repo-cli's `sbom --package` sends the bare file name as the ckey.
        r = http.get(f"/repo/{ch}/world-2.0-h1_0.tar.bz2", params={"sbom": "download"})
        assert r.status_code == 200 and r.headers["content-disposition"].endswith('"world-2.0-h1_0.spdx.json"')
        assert http.get(f"/repo/{ch}/noarch/hello-1.0-0.conda", params={"sbom": "download", "format": "x"}
                        ).status_code == 400
        # Asking for SBOMs is not downloading the package.
        files = http.get(f"/channels/{ch}/artifacts/conda/world/files").json()["items"]
        assert files[0]["download_count"] == 0


def test_document_sboms_and_uploaded_sboms(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path],
                                           tmp_path: Path) -> None:
    ch = channel("sbom-docs")
    docs = make_documents(tmp_path)
    cli.run("upload", "-c", ch, str(docs["env"]), str(docs["notebook"]))
    cli.run("sbom", "--channel", ch, "--ckey", "envs/analytics/environment.yml", "--format", "cyclonedx")
    bom = valid_cyclonedx(cli.home / "analytics-0.cdx.json")
    assert sorted(c["purl"] for c in bom["components"]) == ["pkg:conda/numpy", "pkg:conda/python",
                                                            "pkg:pypi/requests"]
    cli.run("sbom", "--channel", ch, "--package", "sales", "--version", "0", "--os", "jupyter", "--family", "notebook")
    assert valid_spdx(cli.home / "sales-0.spdx.json")["packages"][0]["name"] == "sales"
    # An SBOM uploaded for a package is served as uploaded, in its format.
    uploaded = tmp_path / "hello.spdx.json"
    vendor = json.loads(docs["sbom"].read_text())
    vendor["packages"][0].update(name="hello", versionInfo="1.0")
    vendor["name"] = "vendor-sbom-of-hello"
    uploaded.write_text(json.dumps(vendor))
    cli.run("upload", "-c", ch, str(conda_packages["hello"]), str(uploaded))
    cli.run("sbom", "--channel", ch, "--ckey", "noarch/hello-1.0-0.conda", "--output", str(tmp_path / "got.json"))
    assert (tmp_path / "got.json").read_bytes() == uploaded.read_bytes()
    cli.run("sbom", "--channel", ch, "--ckey", "noarch/hello-1.0-0.conda", "--format", "cyclonedx",
            "--output", str(tmp_path / "ours.json"))
    assert valid_cyclonedx(tmp_path / "ours.json")["metadata"]["component"]["name"] == "hello"


def test_sbom_of_a_private_channel_needs_access(cli: Cli, channel: Callable[..., str],
                                                conda_packages: dict[str, Path]) -> None:
    ch = channel("sbom-private")
    with httpx.Client(base_url=cli.server.api, headers={"X-Auth": cli.token()}) as http:  # type: ignore[attr-defined]
        http.put(f"/channels/{ch}", json={"privacy": "private"}).raise_for_status()
    cli.run("upload", "-c", ch, str(conda_packages["hello"]))
    anonymous = httpx.get(f"{cli.server.api}/repo/{ch}/noarch/hello-1.0-0.conda",  # type: ignore[attr-defined]
                          params={"sbom": "download"})
    assert anonymous.status_code == 401 and "hello" not in anonymous.text
    cli.run("sbom", "--channel", ch, "--ckey", "noarch/hello-1.0-0.conda")


def test_cves_in_cyclonedx_and_in_the_download_report(server_factory, package_builder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    import time
    from datetime import date

    server = server_factory()
    cli = Cli(tmp_path / "home", server)
    cli.home.mkdir()
    cli.run("config", "--set", "sites.t.url", server.api)
    cli.run("config", "--set", "default_site", "t")
    cli.run("login", "--username", server.admin_username, "--password", server.admin_password, "--hostname", "h")
    cli.run("channel", "--create", "sec")
    cli.run("upload", "-c", "sec", str(package_builder("openssl", "1.1.1s", "linux-64", license="Apache-2.0")))
    data = Path(__file__).parents[2] / "data" / "cve"
    subprocess.run([sys.executable, "-m", "taipan.admin.main", "cve", "import", str(data)], check=True,
                   capture_output=True, env={**os.environ, "TAIPAN_HOME": str(server.home)}, timeout=120)
    cli.run("sbom", "--channel", "sec", "--ckey", "linux-64/openssl-1.1.1s-0.conda", "--format", "cyclonedx")
    bom = valid_cyclonedx(cli.home / "openssl-1.1.1s-0.cdx.json")
    vulns = {v["id"]: v for v in bom["vulnerabilities"]}
    assert "CVE-2023-0286" in vulns
    assert vulns["CVE-2023-0286"]["ratings"][0]["score"] == 7.4
    assert vulns["CVE-2023-0286"]["affects"] == [{"ref": bom["metadata"]["component"]["bom-ref"]}]
    # A download after the import carries the file's CVEs into the report.
    r = httpx.get(f"{server.api}/repo/sec/linux-64/openssl-1.1.1s-0.conda")
    assert r.status_code == 200
    deadline = time.monotonic() + 30
    while True:
        cli.run("report", "--date_from", date.today().isoformat(), "--channels", "sec", "--filename", "r")
        items = json.loads((cli.home / "r.json").read_text())["downloaded_items"]
        if items or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(items) == 1 and "CVE-2023-0286" in items[0]["cve_ids"]
    assert items[0]["cve_max_score"] == max(v["ratings"][0]["score"] for v in vulns.values()
                                            if v.get("analysis", {}).get("state") not in ("resolved",
                                                                                          "false_positive"))


def test_python_and_r_sboms_are_valid(cli: Cli, channel: Callable[..., str], tmp_path: Path) -> None:
    import io
    import tarfile

    from pydists import build_sdist, build_wheel

    ch = channel("sbom-py-r")
    wheel = build_wheel(tmp_path, "demo-lib", "1.2", requires_dist=["requests>=2", "Click; extra == 'cli'"])
    sdist = build_sdist(tmp_path, "demo-lib", "1.2")
    rpkg = tmp_path / "rdemo_1.0.tar.gz"
    with tarfile.open(rpkg, "w:gz") as tar:
        for name, data in {"rdemo/DESCRIPTION": b"Package: rdemo\nVersion: 1.0\nLicense: GPL-2 | MIT\n"
                                                b"Title: A demo\nImports: jsonlite (>= 1.0)\n",
                           "rdemo/NAMESPACE": b"export(f)\n", "rdemo/R/f.R": b"f <- function() 1\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with httpx.Client(base_url=cli.server.api, headers={"X-Auth": cli.token()}) as http:  # type: ignore[attr-defined]
        for path, filetype in ((wheel, "bdist_wheel"), (sdist, "sdist"), (rpkg, "cran_source_package")):
            r = http.post(f"/channels/{ch}/artifacts", data={"filetype": filetype},
                          files={"content": (path.name, path.read_bytes())})
            assert r.status_code == 201, r.text
        ckeys = {f["name"]: f["ckey"] for family, name in (("python", "demo-lib"), ("cran", "rdemo"))
                 for f in http.get(f"/channels/{ch}/artifacts/{family}/{name}/files").json()["items"]}
    for filename, ckey in ckeys.items():
        cli.run("sbom", "--channel", ch, "--ckey", ckey, "--output", str(tmp_path / f"{filename}.spdx.json"))
        doc = valid_spdx(tmp_path / f"{filename}.spdx.json")
        cli.run("sbom", "--channel", ch, "--ckey", ckey, "--format", "cyclonedx",
                "--output", str(tmp_path / f"{filename}.cdx.json"))
        bom = valid_cyclonedx(tmp_path / f"{filename}.cdx.json")
        component = bom["metadata"]["component"]
        if filename.endswith(".whl"):
            assert component["purl"] == "pkg:pypi/demo-lib@1.2"
            assert {c["name"] for c in bom["components"]} == {"requests", "click"}
            assert "./demo_lib/__init__.py" in {f["fileName"] for f in doc["files"]}
        if filename.startswith("rdemo"):
            assert component["purl"] == "pkg:cran/rdemo@1.0"
            assert [c["purl"] for c in bom["components"]] == ["pkg:cran/jsonlite"]
