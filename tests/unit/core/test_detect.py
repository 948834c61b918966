"""taipan.domain.detect: what an upload is, from its content; and its filetypes are the server's."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import pytest

from taipan.domain import families
from taipan.domain.detect import PACKAGE_TYPES, TYPE_EXPECTS, detect


def tar(members: dict[str, bytes], mode: str = "w:gz") -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def zipped(members: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(("fh", "name", "kind"), [
    (tar({"info/index.json": b"{}", "lib/x": b""}, "w:bz2"), "x-1-0.tar.bz2", "conda"),
    (zipped({"metadata.json": b"{}", "info-x-1-0.tar.zst": b"", "pkg-x-1-0.tar.zst": b""}), "x-1-0.conda", "conda"),
    (zipped({"x/__init__.py": b"", "x-1.dist-info/METADATA": b"Name: x"}), "x-1-py3-none-any.whl", "pypi"),
    (tar({"x-1/PKG-INFO": b"Name: x", "x-1/setup.py": b""}), "x-1.tar.gz", "pypi"),
    (tar({"x-1/PKG-INFO": b"Name: x"}, "w:bz2"), "x-1.tar.bz2", "pypi"),  # a .tar.bz2 that is not conda
    (tar({"r/DESCRIPTION": b"Package: r", "r/NAMESPACE": b""}), "r_1.0.tar.gz", "cran"),
    (tar({"p/anaconda-project.yml": b"name: p", "p/PKG-INFO": b""}), "p.tar.gz", "project"),
    (zipped({"p/anaconda-project.yml": b"name: p"}), "p.zip", "project"),
    (io.BytesIO(json.dumps({"nbformat": 4, "cells": []}).encode()), "n.ipynb", "ipynb"),
    (io.BytesIO(b"name: e\ndependencies: [python]\n"), "environment.yml", "env"),
    (io.BytesIO(b"name: p\npackages: [python]\ncommands: {}\n"), "anaconda-project.yml", "project"),
    (io.BytesIO(json.dumps({"spdxVersion": "SPDX-2.3"}).encode()), "x.spdx.json", "sbom"),
])
def test_detect_by_content(fh: io.BytesIO, name: str, kind: str) -> None:
    found = detect(fh, name)
    assert found is not None and found.kind == kind
    assert fh.tell() == 0  # left where the upload starts reading


@pytest.mark.parametrize("data", [b"", b"\x00\x01\x02", b"just words\n", b"BZh91AY&SY", b"PK\x03\x04broken",
                                  b"key: value\n", b"{\"a\": 1}"])
def test_unknown_content_is_none(data: bytes) -> None:
    assert detect(io.BytesIO(data), "x.tar.bz2") is None


def test_every_package_type_is_a_filetype_the_server_knows() -> None:
    assert set(TYPE_EXPECTS) == set(PACKAGE_TYPES)
    for kind, filetype in PACKAGE_TYPES.items():
        assert filetype in families.UPLOAD_TYPES, kind
    assert families.UPLOAD_TYPES[PACKAGE_TYPES["conda"]] == "conda"
