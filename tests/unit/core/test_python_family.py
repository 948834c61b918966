"""The python family's pure parts: file names, metadata, the incremental simple index."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest

from pydists import build_sdist, build_wheel
from taipan.domain.families import get
from taipan.domain.families.python import PYTHON, SimpleIndex, parse_filename
from taipan.errors import InvalidInput


@pytest.mark.parametrize("filename, expected", [
    ("Foo_Bar-1.0-py3-none-any.whl", ("foo-bar", "1.0", "bdist_wheel")),
    ("foo_bar-1.0-1-cp312-cp312-manylinux_2_17_x86_64.whl", ("foo-bar", "1.0", "bdist_wheel")),
    ("foo_bar-1.0.post1.tar.gz", ("foo-bar", "1.0.post1", "sdist")),
    ("foo-1.0.zip", ("foo", "1.0", "sdist")),
])
def test_file_names(filename: str, expected: tuple[str, str, str]) -> None:
    assert parse_filename(filename) == expected


@pytest.mark.parametrize("filename", ["foo-1.0.whl", "foo.tar.gz", "foo-notaversion.tar.gz", "foo-1.0.tar.bz2",
                                      "foo-1.0-py3-none.whl"])
def test_bad_file_names(filename: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_filename(filename)
    assert exc.value.hint


def _read(path: Path):  # type: ignore[no-untyped-def]
    data = path.read_bytes()
    return PYTHON.read_upload(path, path.name, sha256=hashlib.sha256(data).hexdigest(),
                              md5=hashlib.md5(data).hexdigest(), size=len(data))


def test_read_upload_and_sniff(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "Demo.Pkg", "1.0", requires_dist=["requests>=2; python_version>'3'"],
                        requires_python=">=3.9")
    sdist = build_sdist(tmp_path, "Demo.Pkg", "1.0")
    for path in (wheel, sdist):
        head = path.read_bytes()[:8]
        assert PYTHON.sniff(path.name, head, path)
        art = _read(path)
        assert (art.family, art.name, art.version, art.subdir) == ("python", "demo-pkg", "1.0", "simple")
        assert art.ckey == f"simple/demo-pkg/{path.name}"
        assert art.record["metadata_sha256"] == hashlib.sha256(art.meta["METADATA"].encode()).hexdigest()
    assert _read(wheel).record["requires_python"] == ">=3.9"
    info = PYTHON.sbom_info(_read(wheel).record, _read(wheel).meta, channel_url="http://x/api/repo/c", subdir="simple")
    assert info is not None and info.purl == "pkg:pypi/demo-pkg@1.0"
    assert [d.purl for d in info.dependencies] == ["pkg:pypi/requests"]
    assert get("python") is PYTHON and PYTHON.yankable
    assert PYTHON.version_key("1.10") > PYTHON.version_key("1.9") > PYTHON.version_key("1.9rc1")
    assert PYTHON.normalize_name("Foo__Bar.baz") == "foo-bar-baz"


def _row(name: str, fn: str, version: str) -> tuple[str, bytes]:
    return name, orjson.dumps({"name": name, "version": version, "filename": fn, "sha256": "ab" * 32, "size": 1})


def test_simple_index_rebuilds_only_touched_projects() -> None:
    index = SimpleIndex("simple")
    index.apply({"a-1.0.tar.gz": _row("a", "a-1.0.tar.gz", "1.0"), "b-1.0.tar.gz": _row("b", "b-1.0.tar.gz", "1.0")})
    first = index.build(None)
    assert set(first.files) == {"index.html", "index.json", "a/index.html", "a/index.json", "b/index.html",
                                "b/index.json"}
    b_page = first.files["b/index.html"]
    index.apply({"a-2.0.tar.gz": _row("a", "a-2.0.tar.gz", "2.0")})
    second = index.build(first)
    assert second.files["b/index.html"] is b_page and second.etags["b/index.html"] == first.etags["b/index.html"]
    assert orjson.loads(second.files["a/index.json"])["versions"] == ["1.0", "2.0"]
    index.apply({"b-1.0.tar.gz": None})
    third = index.build(second)
    assert "b/index.html" not in third.files and b'href="b/"' not in third.files["index.html"]
