"""The notebook, anaconda_env, anaconda_project and sbom families read uploads completely and refuse bad
ones with a hint (issue 12, part 3)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from taipan.domain import families
from taipan.errors import InvalidInput


def read(family: str, path: Path):  # type: ignore[no-untyped-def]
    return families.get(family).read_upload(path, path.name, sha256="0" * 64, md5="0" * 32,
                                            size=path.stat().st_size)


def test_each_family_reads_its_document(tmp_path: Path) -> None:
    nb = tmp_path / "report.ipynb"
    nb.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {"version": "1.2"}, "cells": []}))
    art = read("notebook", nb)
    assert (art.name, art.version, art.ckey, art.subdir) == ("report", "1.2", "jupyter/report.ipynb", "jupyter")
    env = tmp_path / "environment.yml"
    env.write_text("name: ds\nchannels: [conda-forge]\ndependencies:\n - conda-forge::numpy>=1.26\n"
                   " - pip: [Requests_Lib==2]\n")
    art = read("anaconda_env", env)
    assert (art.name, art.ckey) == ("ds", "envs/ds/environment.yml")
    info = families.get("anaconda_env").sbom_info(art.record, art.meta, channel_url="http://h/api/repo/c",
                                                 subdir=art.subdir)
    assert info is not None
    assert [(d.name, d.purl) for d in info.dependencies] == [("numpy", "pkg:conda/numpy"),
                                                             ("requests-lib", "pkg:pypi/requests-lib")]
    proj = tmp_path / "p.zip"
    with zipfile.ZipFile(proj, "w") as zf:
        zf.writestr("p/anaconda-project.yml", "name: p\nplatforms: [linux-64]\npackages: [python]\n")
    art = read("anaconda_project", proj)
    assert (art.name, art.ckey, art.meta["platforms"]) == ("p", "projects/p/p.zip", ["linux-64"])
    cdx = tmp_path / "x.cdx.json"
    cdx.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.6",
                               "metadata": {"component": {"type": "library", "name": "x", "version": "3"}}}))
    art = read("sbom", cdx)
    assert (art.name, art.version, art.record["format"]) == ("x", "3", "cyclonedx")


@pytest.mark.parametrize(("family", "filename", "content", "message"), [
    ("notebook", "n.ipynb", "not json", "is not a notebook"),
    ("notebook", "n.ipynb", json.dumps({"nbformat": 4, "nbformat_minor": 4, "cells": [{"cell_type": "x"}],
                                        "metadata": {}}), "is not a valid notebook"),
    ("notebook", "n.json", json.dumps({"nbformat": 4, "nbformat_minor": 4, "cells": [], "metadata": {}}),
     "does not end in .ipynb"),
    ("anaconda_env", "e.yml", "name: e\ndependencies: python\n", "no `dependencies` list"),
    ("anaconda_env", "e.yml", "name: e\ndependencies: [python, 5]\n", "neither a package spec"),
    ("anaconda_env", "e.yml", "name: ../x\ndependencies: [python]\n", "no usable name"),
    ("anaconda_env", "e.yml", "name: [e\n", "not valid YAML"),
    ("anaconda_project", "p.zip", "PK\x05\x06" + "\x00" * 18, "no anaconda-project.yml"),
    ("anaconda_project", "p.tar.gz", "garbage", "neither a zip nor a tar"),
    ("sbom", "s.json", json.dumps({"hello": 1}), "is not an SBOM"),
])
def test_bad_documents_are_refused(tmp_path: Path, family: str, filename: str, content: str, message: str) -> None:
    path = tmp_path / filename
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(InvalidInput) as err:
        read(family, path)
    assert message in err.value.message and err.value.hint


@pytest.mark.parametrize(("text", "expected"), [
    ("MIT", "MIT"), ("mit", "MIT"), ("Apache-2.0 OR MIT", "Apache-2.0 OR MIT"), ("BSD", None), ("GPL", None),
    ("Proprietary", None), ("", None), (None, None), ("MIT AND", None)])
def test_licenses_become_spdx_expressions_only_when_valid(text: str | None, expected: str | None) -> None:
    from taipan.domain.sbom import spdx_expression

    assert spdx_expression(text) == expected
