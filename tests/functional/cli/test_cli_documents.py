"""Notebooks, environment files, anaconda-projects and SBOM documents (issue 12, part 3): uploaded with the
real `conda-repo` (detected, or with -t), listed, searched, downloaded, copied, moved and removed."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import httpx
from cli_harness import Cli

NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {"id": "a1", "cell_type": "markdown", "metadata": {}, "source": ["# Sales analysis\n", "Some *text*."]},
        {"id": "a2", "cell_type": "code", "metadata": {}, "execution_count": 1, "source": "print(1)",
         "outputs": [{"output_type": "stream", "name": "stdout", "text": "1\n"}]},
    ],
}
ENV = "name: analytics\nchannels: [defaults]\ndependencies:\n  - python=3.12\n  - numpy>=1.26\n" \
      "  - pip:\n    - requests==2.32.0\n"
PROJECT_YML = b"name: dashboard\ndescription: A small dashboard\nplatforms: [linux-64, osx-arm64]\n" \
              b"packages: [python=3.12, bokeh]\ncommands:\n  show:\n    unix: python main.py\n"


def make_documents(tmp_path: Path) -> dict[str, Path]:
    nb = tmp_path / "sales.ipynb"
    nb.write_text(json.dumps(NOTEBOOK))
    env = tmp_path / "environment.yml"
    env.write_text(ENV)
    project = tmp_path / "dashboard.tar.gz"
    with tarfile.open(project, "w:gz") as tar:
        for name, data in {"dashboard/anaconda-project.yml": PROJECT_YML, "dashboard/main.py": b"print(1)\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    sbom = tmp_path / "thing.spdx.json"
    sbom.write_text(json.dumps({
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT", "name": "thing-1.2",
        "documentNamespace": "https://example.invalid/thing-1.2",
        "creationInfo": {"created": "2024-01-01T00:00:00Z", "creators": ["Tool: hand"]},
        "packages": [{"SPDXID": "SPDXRef-thing", "name": "thing", "versionInfo": "1.2",
                      "downloadLocation": "NOASSERTION"}],
        "relationships": [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                           "relatedSpdxElement": "SPDXRef-thing"}]}))
    return {"notebook": nb, "env": env, "project": project, "sbom": sbom}


def test_documents_upload_list_download_copy_move_remove(cli: Cli, channel: Callable[..., str],
                                                         tmp_path: Path) -> None:
    docs = make_documents(tmp_path)
    src, dst = channel("docs"), channel("docs-to")
    proc = cli.run("upload", "-c", src, *(str(p) for p in docs.values()))
    assert "4 uploaded" in proc.stderr, proc.stderr
    packages = json.loads(cli.run("channel", "--list-packages", src, "--json").stdout)[src]["items"]
    assert sorted((p["family"], p["name"]) for p in packages) == [
        ("anaconda_env", "analytics"), ("anaconda_project", "dashboard"), ("notebook", "sales"), ("sbom", "thing")]
    expected = {"notebook": ("sales", "jupyter/sales.ipynb"),
                "anaconda_env": ("analytics", "envs/analytics/environment.yml"),
                "anaconda_project": ("dashboard", "projects/dashboard/dashboard.tar.gz"),
                "sbom": ("thing", "sbom/thing/thing.spdx.json")}
    token = cli.token()
    local = {"notebook": docs["notebook"], "anaconda_env": docs["env"], "anaconda_project": docs["project"],
             "sbom": docs["sbom"]}
    with httpx.Client(base_url=cli.server.api, headers={"X-Auth": token}) as http:  # type: ignore[attr-defined]
        for family, (name, ckey) in expected.items():
            files = json.loads(cli.run("channel", "--list-files", f"{src}::{name}", "--family", family,
                                       "--json").stdout)
            assert [f["ckey"] for f in files] == [ckey]
            # Served at the documented URL, byte for byte as uploaded (an SBOM too).
            r = http.get(f"/repo/{src}/{ckey}")
            assert r.status_code == 200 and r.content == local[family].read_bytes()
        assert http.get(f"/repo/{src}/jupyter/missing.ipynb").status_code == 404
        meta = http.get(f"/channels/{src}/artifacts/notebook/sales/files").json()["items"][0]["metadata"]
        assert meta["summary"] == "Sales analysis" and meta["notebook"]["kernel"] == "python3"
        project = http.get(f"/channels/{src}/artifacts").json()["items"]
        assert next(p for p in project if p["family"] == "anaconda_project")["metadata"]["platforms"] == [
            "linux-64", "osx-arm64"]
        found = http.get("/artifacts", params={"q": "analytics", "family": "anaconda_env", "limit": 1000}).json()
        assert (src, "analytics") in [(i["channel_path"], i["name"]) for i in found["items"]]
        assert {i["family"] for i in found["items"]} == {"anaconda_env"}
    # Copy, move and remove work on every family.
    cli.run("copy", f"{src}::sales", "-d", dst, "--family", "notebook")
    cli.run("move", f"{src}::analytics", "-d", dst, "--family", "anaconda_env")
    cli.run("remove", f"{src}::dashboard", "--family", "anaconda_project", "-f")
    left = {p["name"] for p in json.loads(cli.run("channel", "--list-packages", src, "--json").stdout)[src]["items"]}
    moved = {p["name"] for p in json.loads(cli.run("channel", "--list-packages", dst, "--json").stdout)[dst]["items"]}
    assert left == {"sales", "thing"} and moved == {"sales", "analytics"}


def test_wrong_type_and_bad_documents_are_refused(cli: Cli, channel: Callable[..., str], tmp_path: Path) -> None:
    docs = make_documents(tmp_path)
    target = channel("docs-bad")
    proc = cli.run("upload", "-c", target, "-t", "env", str(docs["notebook"]), rc=2)
    assert "sales.ipynb is not an environment file (-t env): it is a Jupyter notebook" in proc.stderr
    bad_nb = tmp_path / "broken.ipynb"
    bad_nb.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                                  "cells": [{"cell_type": "code", "source": 5}]}))
    proc = cli.run("upload", "-c", target, str(bad_nb), rc=2)
    assert "broken.ipynb is not a valid notebook" in proc.stderr, proc.stderr
    no_name = tmp_path / "env2.yml"
    no_name.write_text("channels: [defaults]\ndependencies: [python]\n")
    proc = cli.run("upload", "-c", target, str(no_name), rc=2)
    assert "env2.yml has no usable name" in proc.stderr and "name: NAME" in proc.stderr
    empty_zip = tmp_path / "proj.zip"
    with zipfile.ZipFile(empty_zip, "w") as zf:
        zf.writestr("proj/anaconda-project.yml", "description: no name\n")
    proc = cli.run("upload", "-c", target, str(empty_zip), rc=2)
    assert "proj.zip has no usable name" in proc.stderr
    # The server checks too, whatever a client says the file is.
    with httpx.Client(base_url=cli.server.api, headers={"X-Auth": cli.token()}) as http:  # type: ignore[attr-defined]
        r = http.post(f"/channels/{target}/artifacts", data={"filetype": "anaconda_env"},
                      files={"content": ("sales.ipynb", docs["notebook"].read_bytes())})
        assert r.status_code == 400 and "is a Jupyter notebook, not a conda environment file" in r.text
    assert json.loads(cli.run("channel", "--list-packages", target, "--json").stdout)[target]["items"] == []


def test_download_command(cli: Cli, channel: Callable[..., str], conda_packages: dict[str, Path],
                          tmp_path: Path) -> None:
    docs = make_documents(tmp_path)
    ch = channel("dl")
    cli.run("upload", "-c", ch, str(docs["notebook"]), str(docs["env"]), str(conda_packages["hello"]),
            str(conda_packages["world"]))
    # PSM's documented form: a notebook by name, to the current directory or --filename.
    cli.run("download", "--channel", ch, "--notebook", "sales")
    assert (cli.home / "sales.ipynb").read_bytes() == docs["notebook"].read_bytes()
    cli.run("download", "--channel", ch, "--notebook", "sales", "--filename", str(tmp_path / "report.ipynb"))
    assert (tmp_path / "report.ipynb").read_bytes() == docs["notebook"].read_bytes()
    cli.run("download", "--channel", ch, "--ckey", "envs/analytics/environment.yml", "--filename",
            str(tmp_path / "envs") + "/")
    assert (tmp_path / "envs" / "environment.yml").read_text() == docs["env"].read_text()
    cli.run("download", "--channel", ch, "--package", "world", "--filename", str(tmp_path / "pkgs") + "/")
    assert (tmp_path / "pkgs" / "world-2.0-h1_0.tar.bz2").read_bytes() == conda_packages["world"].read_bytes()
    proc = cli.run("download", "--channel", ch, "--notebook", "nothing", rc=4)
    assert "jupyter/nothing.ipynb is not in channel" in proc.stderr
    assert not (cli.home / "nothing.ipynb").exists() and not list(cli.home.glob("*.part"))


def test_a_project_directory_is_uploaded_as_its_archive(cli: Cli, channel: Callable[..., str],
                                                         tmp_path: Path) -> None:
    project = tmp_path / "dashboard"
    (project / "envs" / "default").mkdir(parents=True)
    (project / "anaconda-project.yml").write_bytes(PROJECT_YML)
    (project / "main.py").write_text("print(1)\n")
    (project / "envs" / "default" / "huge.bin").write_bytes(b"\0" * 1000)
    ch = channel("projdir")
    proc = cli.run("upload", "-c", ch, str(project))
    assert f"Uploaded dashboard.zip to {ch}" in proc.stderr
    with httpx.Client(base_url=cli.server.api, headers={"X-Auth": cli.token()}) as http:  # type: ignore[attr-defined]
        data = http.get(f"/repo/{ch}/projects/dashboard/dashboard.zip").content
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["dashboard/anaconda-project.yml", "dashboard/main.py"]
