"""R packages, pure rules: DESCRIPTION as R reads it, names and versions as R orders them, the checks
on uploaded archives, binary trees, and PACKAGES as the incremental index builds it."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
from pathlib import Path

import orjson
import pytest

from taipan.domain import cran
from taipan.domain.families import get
from taipan.domain.families.cran import CRAN, PackagesIndex
from taipan.errors import InvalidInput

DESC = (b"Package: foo\nVersion: 1.2-3\nTitle: Foo\nDepends: R (>= 3.5),\n    bar (>= 1.0),\n\tbaz\n"
        b"Imports: qux\nSuggests: testthat\nLinkingTo: Rcpp\nLicense: GPL-2 | GPL-3\nNeedsCompilation: no\n")


def test_dcf_is_read_as_read_dcf_does():
    desc = cran.read_description(DESC + b"Description:   spaced   out  \n")
    # continuation lines are joined with a newline, their leading blanks dropped (R's read.dcf)
    assert desc["Depends"] == "R (>= 3.5),\nbar (>= 1.0),\nbaz"
    assert desc["Description"] == "spaced   out"
    assert cran.one_line(desc["Depends"]) == "R (>= 3.5), bar (>= 1.0), baz"
    records = cran.parse_dcf(b"Package: a1\r\nVersion: 1.0\r\n\r\n\nPackage: b2\nVersion: 2.0\n")
    assert [r["Package"] for r in records] == ["a1", "b2"]


def test_dcf_encoding_field_decides_the_charset():
    latin = "Package: foo\nVersion: 1.0\nEncoding: latin1\nAuthor: Jos\xe9\n".encode("latin-1")
    assert cran.read_description(latin)["Author"] == "Jos\u00e9"
    utf8 = "Package: foo\nVersion: 1.0\nEncoding: UTF-8\nAuthor: Jos\u00e9\n".encode()
    assert cran.read_description(utf8)["Author"] == "Jos\u00e9"
    for bad in (b"Package: foo\nEncoding: UTF-8\nAuthor: Jos\xe9\n", b"Package: foo\nEncoding: klingon\n",
                b"Package: foo\n# a comment\n", b"  continues nothing\n", b"Package: a\nPackage: b\n",
                b"Package: a\n\nPackage: b\n"):
        with pytest.raises(InvalidInput) as info:
            cran.read_description(bad)
        assert info.value.code == "invalid_description" and info.value.hint


def test_versions_order_as_numeric_version():
    versions = ["1.10", "1.2", "1.2-1", "0.9.9", "1.2.0.1", "1.0", "10.0"]
    assert sorted(versions, key=cran.version_key) == ["0.9.9", "1.0", "1.2", "1.2.0.1", "1.2-1", "1.10", "10.0"]
    assert cran.version_key("1-0") == cran.version_key("1.0")
    assert [v for v in ("1.0", "0.9-3", "1", "1.0a", "1..0", "-1.0", "1.0-") if cran.is_valid_version(v)] == \
        ["1.0", "0.9-3"]
    assert [n for n in ("ggplot2", "data.table", "R.utils", "a", "2pac", "foo.", "foo_bar", "b")
            if cran.is_valid_name(n)] == ["ggplot2", "data.table", "R.utils"]


def test_file_names():
    assert cran.parse_filename("data.table_1.14.8.tar.gz") == cran.RFileName("data.table", "1.14.8", ".tar.gz")
    assert cran.parse_filename("foo_1.0-2.zip").ext == ".zip"
    for bad, code in (("foo-1.0.tar.gz", "invalid_filename"), ("foo_1.0.tar.bz2", "invalid_filename"),
                      ("foo_1.0a.tar.gz", "invalid_version"), ("foo_1.tgz", "invalid_version")):
        with pytest.raises(InvalidInput) as info:
            cran.parse_filename(bad)
        assert info.value.code == code


def _tar(path: Path, members: dict[str, bytes], *, links: dict[str, str] | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path


def _desc(name: str = "foo", version: str = "1.0", extra: str = "") -> bytes:
    return f"Package: {name}\nVersion: {version}\nLicense: MIT\n{extra}".encode()


def test_a_source_package_is_read(tmp_path):
    path = _tar(tmp_path / "foo_1.2-3.tar.gz", {"foo/DESCRIPTION": DESC, "foo/NAMESPACE": b"", "foo/R/a.R": b""})
    pkg = cran.read_package(path, path.name)
    assert (pkg.name, pkg.version, pkg.subdir, pkg.binary) == ("foo", "1.2-3", "src/contrib", False)
    record = cran.make_record(pkg, md5="m" * 32, sha256="s" * 64, size=10)
    text = cran.stanza(record).decode()
    assert text.splitlines()[:3] == ["Package: foo", "Version: 1.2-3", "Depends: R (>= 3.5), bar (>= 1.0), baz"]
    assert "MD5sum: " + "m" * 32 in text and "SHA256: " + "s" * 64 in text and "Title" not in text
    assert cran.dependencies(record) == [("bar", "bar (>= 1.0)"), ("baz", "baz"), ("qux", "qux"),
                                         ("Rcpp", "Rcpp")]


@pytest.mark.parametrize(("members", "links", "code"), [
    ({"foo/NAMESPACE": b""}, None, "missing_description"),
    ({"foo/DESCRIPTION": _desc()}, None, "missing_namespace"),
    ({"foo/DESCRIPTION": _desc(version="1.1"), "foo/NAMESPACE": b""}, None, "filename_mismatch"),
    ({"foo/DESCRIPTION": _desc(name="bar"), "foo/NAMESPACE": b""}, None, "filename_mismatch"),
    ({"foo/DESCRIPTION": _desc(), "foo/NAMESPACE": b"", "/etc/passwd": b""}, None, "unsafe_archive"),
    ({"foo/DESCRIPTION": _desc(), "foo/NAMESPACE": b"", "foo/../../x": b""}, None, "unsafe_archive"),
    ({"foo/DESCRIPTION": _desc(), "foo/NAMESPACE": b""}, {"foo/l": "/etc/passwd"}, "unsafe_archive"),
    ({"foo/DESCRIPTION": _desc(), "foo/NAMESPACE": b"", "bar/x": b""}, None, "invalid_package"),
    ({"foo/DESCRIPTION": _desc(extra="Built: R 4.2.2; ; 2024-01-01; unix\n"), "foo/NAMESPACE": b""}, None,
     "binary_as_source"),
])
def test_bad_source_packages_are_refused(tmp_path, members, links, code):
    path = _tar(tmp_path / "foo_1.0.tar.gz", members, links=links)
    with pytest.raises(InvalidInput) as info:
        cran.read_package(path, path.name)
    assert info.value.code == code and info.value.hint


def test_duplicates_bombs_and_non_gzip_are_refused(tmp_path):
    dup = tmp_path / "foo_1.0.tar.gz"
    with tarfile.open(dup, "w:gz") as tar:
        for name, data in (("foo/DESCRIPTION", _desc()), ("foo/NAMESPACE", b""), ("foo/DESCRIPTION", _desc())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(InvalidInput, match="twice"):
        cran.read_package(dup, dup.name)
    big = _tar(tmp_path / "big" / "foo_1.0.tar.gz" if (tmp_path / "big").mkdir() is None else dup,
               {"foo/DESCRIPTION": _desc(), "foo/NAMESPACE": b"", "foo/data": b"\0" * 5000})
    with pytest.raises(InvalidInput) as info:
        cran.read_package(big, big.name, max_unpacked=4096)
    assert info.value.code == "archive_too_large"
    plain = tmp_path / "plain" / "foo_1.0.tar.gz"
    plain.parent.mkdir()
    with tarfile.open(plain, "w") as tar:
        tar.add(big, "foo/DESCRIPTION")
    with pytest.raises(InvalidInput) as info:
        cran.read_package(plain, plain.name)
    assert info.value.code == "not_gzip"
    truncated = tmp_path / "trunc" / "foo_1.0.tar.gz"
    truncated.parent.mkdir()
    truncated.write_bytes(big.read_bytes()[:40])
    with pytest.raises(InvalidInput) as info:
        cran.read_package(truncated, truncated.name)
    assert info.value.code == "invalid_package"


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


WIN_BUILT = "Built: R 4.3.1; x86_64-w64-mingw32; 2023-07-01 12:00:00 UTC; windows\n"
MAC_BUILT = "Built: R 4.3.1; aarch64-apple-darwin20; 2023-07-01 12:00:00 UTC; unix\n"


def test_binary_packages_go_to_the_tree_of_their_r_version(tmp_path):
    win = _zip(tmp_path / "foo_1.0.zip", {"foo/DESCRIPTION": _desc(extra=WIN_BUILT), "foo/NAMESPACE": b""})
    pkg = cran.read_package(win, win.name)
    assert (pkg.subdir, pkg.binary) == ("bin/windows/contrib/4.3", True)
    assert cran.make_record(pkg, md5="m", sha256="s", size=1)["Built"].startswith("R 4.3.1")
    mac = _tar(tmp_path / "foo_1.0.tgz", {"foo/DESCRIPTION": _desc(extra=MAC_BUILT), "foo/NAMESPACE": b""})
    assert cran.read_package(mac, mac.name).subdir == "bin/macosx/big-sur-arm64/contrib/4.3"
    assert cran.read_package(mac, mac.name, subdir="bin/macosx/sonoma-arm64/contrib/4.3").subdir == \
        "bin/macosx/sonoma-arm64/contrib/4.3"
    for path, subdir, code in ((mac, "bin/macosx/big-sur-arm64/contrib/4.2", "invalid_subdir"),
                               (mac, "bin/windows/contrib/4.3", "invalid_subdir"),
                               (mac, "bin/macosx/nope/contrib/4.3", "invalid_subdir"),
                               (win, "src/contrib", "invalid_subdir")):
        with pytest.raises(InvalidInput) as info:
            cran.read_package(path, path.name, subdir=subdir)
        assert info.value.code == code, subdir
    wrong = _zip(tmp_path / "w" / "foo_1.0.zip" if (tmp_path / "w").mkdir() is None else win,
                 {"foo/DESCRIPTION": _desc(extra=MAC_BUILT), "foo/NAMESPACE": b""})
    with pytest.raises(InvalidInput) as info:
        cran.read_package(wrong, wrong.name)
    assert info.value.code == "platform_mismatch"
    unbuilt = _zip(tmp_path / "w" / "foo_1.0.zip", {"foo/DESCRIPTION": _desc(), "foo/NAMESPACE": b""})
    with pytest.raises(InvalidInput) as info:
        cran.read_package(unbuilt, unbuilt.name)
    assert info.value.code == "not_binary"
    assert cran.is_partition("bin/macosx/contrib/4.2") and not cran.is_partition("bin/macosx/contrib/x")
    assert not cran.is_partition("src/contrib/Archive")


def _row(name: str, version: str, **extra: str) -> tuple[str, bytes]:
    return name, orjson.dumps({"Package": name, "Version": version, "MD5sum": "0" * 32, **extra})


def test_the_index_lists_the_newest_version_of_each_package_and_follows_changes():
    index = PackagesIndex("src/contrib")
    index.apply({"b_1.0.tar.gz": _row("b", "1.0"), "a_1.9.tar.gz": _row("a", "1.9"),
                 "a_1.10.tar.gz": _row("a", "1.10", Depends="b")})
    first = index.build(None)
    text = first.files["PACKAGES"].decode()
    assert text == ("Package: a\nVersion: 1.10\nDepends: b\nMD5sum: " + "0" * 32 + "\n\n"
                    "Package: b\nVersion: 1.0\nMD5sum: " + "0" * 32 + "\n")
    assert cran.parse_dcf(first.files["PACKAGES"])[1]["Package"] == "b"
    assert gzip.decompress(first.lazy["PACKAGES.gz"](type("P", (), {"file": lambda s, n: first.files[n]})())) \
        == first.files["PACKAGES"]
    assert gzip.decompress(first.lazy["Meta/archive.rds"](None)).count(b"a/a_1.9.tar.gz") == 1
    assert "Meta/archive.rds" not in PackagesIndex("bin/windows/contrib/4.3").build(None).lazy
    index.apply({"a_1.10.tar.gz": None, "c_0.1.tar.gz": _row("c", "0.1")})
    text = index.build(first).files["PACKAGES"].decode()
    assert "Version: 1.9" in text and "1.10" not in text and text.index("Package: b") < text.index("Package: c")
    index.apply({"a_1.9.tar.gz": None, "b_1.0.tar.gz": None, "c_0.1.tar.gz": None})
    last = index.build(None)
    assert last.files["PACKAGES"] == b"" and b"a/a_" not in gzip.decompress(last.lazy["Meta/archive.rds"](None))


def test_the_family_describes_r_packages():
    assert get("cran") is CRAN and "src" in CRAN.roots and not CRAN.yankable
    assert CRAN.sniff("foo_1.0.tar.gz", b"\x1f\x8b\x08\x00") and not CRAN.sniff("foo-1.0-0.tar.bz2", b"BZh")
    assert CRAN.install_command("foo", "http://h/api/repo/ch") == 'install.packages("foo", repos = "http://h/api/repo/ch")'
    assert CRAN.file_type("foo_1.0.tar.gz") == "cran_source_package"
    assert CRAN.file_type("foo_1.0.zip") == "cran_binary_package"
    record = {"Package": "foo", "Version": "1.0", "Imports": "bar (>= 2.0), baz", "Suggests": "qux",
              "License": "GPL-3"}
    info = CRAN.sbom_info(record, {"DESCRIPTION": {"URL": "https://a.invalid, https://b.invalid",
                                                   "Title": "Foo"}}, channel_url="http://h/api/repo/ch",
                          subdir="src/contrib")
    assert info is not None and info.purl == "pkg:cran/foo@1.0" and info.homepage == "https://a.invalid"
    assert [(d.name, d.requirement, d.purl) for d in info.dependencies] == [
        ("bar", "bar (>= 2.0)", "pkg:cran/bar"), ("baz", "baz", "pkg:cran/baz")]


def test_packages_rds_is_an_xdr_character_matrix():
    # R reading it (and finding it identical to tools::write_PACKAGES's) is in test_cran_r_client.
    data = cran.packages_rds([cran.rds_row({"Package": "a1", "Version": "1.0", "License": "Jos\u00e9"})])
    assert data.startswith(b"X\n\x00\x00\x00\x02")
    assert b"\x00\x00\x02\x10\x00\x00\x00\x0f" in data  # a STRSXP with attributes: 1 row x 15 columns
    assert b"\x00\x00\x80\x09\x00\x00\x00\x05Jos\xc3\xa9" in data  # a UTF-8 flagged CHARSXP
    assert b"\x00\x00\x00\x09\xff\xff\xff\xff" in data  # NA_character_ where a field is missing
    assert data.endswith(b"\x00\x00\x00\xfe")


@pytest.mark.parametrize(("text", "name", "op", "version"), [
    ("ggplot2", "ggplot2", None, None), ("ggplot2 (>= 3.4)", "ggplot2", ">=", "3.4"),
    ("  ggplot2>=3.4 ", "ggplot2", ">=", "3.4"), ("data.table(<1.15-2)", "data.table", "<", "1.15-2"),
    ("R (>= 4)", "R", ">=", "4"), ("gg*", "gg*", None, None), ("Rcpp (!= 1.0.7)", "Rcpp", "!=", "1.0.7"),
    ("x1 (== 1.0)", "x1", "==", "1.0"),
])
def test_requirements_parse_as_r_and_pip_write_them(text, name, op, version):
    req = cran.parse_requirement(text)
    assert (req.name, req.op, req.version) == (name, op, version)


@pytest.mark.parametrize(("text", "code"), [
    ("", "invalid_spec"), ("ggplot2 (>= 3.4", "invalid_spec"), ("ggplot2 (~= 3.4)", "invalid_spec"),
    ("ggplot2=3.4", "invalid_spec"), ("gg plot", "invalid_spec"), ("2pac", "invalid_spec"),
    ("ggplot2 (>= 3.4a)", "invalid_version"), ("ggplot2 >= 3.4, < 4", "invalid_spec"),
])
def test_bad_requirements_are_refused_with_a_hint(text, code):
    with pytest.raises(InvalidInput) as info:
        cran.parse_requirement(text)
    assert info.value.code == code and info.value.hint


def test_requirements_match_names_and_versions_in_r_order():
    req = cran.parse_requirement("ggplot2 (>= 3.4)")
    assert req.matches("ggplot2", "3.4.0") and req.matches("ggplot2", "3.10") and req.matches("ggplot2", "3.4")
    assert not req.matches("ggplot2", "3.3.9") and not req.matches("GGplot2", "3.5") and not req.matches("x", "9")
    assert cran.parse_requirement("a1 (< 1.0-1)").matches("a1", "1.0") and \
        not cran.parse_requirement("a1 (< 1.0-1)").matches("a1", "1.0.1")
    glob = cran.parse_requirement("gg*")
    assert glob.matches("ggplot2", "1.0") and not glob.matches("rgl", "1")
    assert str(cran.parse_requirement("ggplot2>=3.4")) == "ggplot2 (>= 3.4)"
    reqs = cran.parse_requirements("R (>= 3.5.0),\n    methods, Rcpp (>= 1.0.7), MASS")
    assert [str(r) for r in reqs] == ["R (>= 3.5.0)", "methods", "Rcpp (>= 1.0.7)", "MASS"]
    assert [r.name for r in reqs if not cran.is_shipped_with_r(r.name)] == ["Rcpp"]
