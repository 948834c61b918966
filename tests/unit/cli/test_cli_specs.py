from __future__ import annotations

import pytest

from taipan.cli.specs import PackageSpec, file_name, file_package, file_platform, matches
from taipan.errors import InvalidInput


@pytest.mark.parametrize(("text", "expected"), [
    ("snakes", PackageSpec("snakes")),
    ("snakes/lua", PackageSpec("snakes", "lua")),
    ("snakes::hello", PackageSpec("snakes", None, "hello")),
    ("snakes/lua::hello/1.0", PackageSpec("snakes", "lua", "hello", "1.0")),
    ("snakes::hello/1.0/hello-1.0-0.conda", PackageSpec("snakes", None, "hello", "1.0", "hello-1.0-0.conda")),
])
def test_parse(text: str, expected: PackageSpec) -> None:
    spec = PackageSpec.parse(text)
    assert spec == expected
    assert str(spec) == text


@pytest.mark.parametrize("text", ["", "::hello", "a/b/c::x", "Snakes::x", "snakes::a/b/c/d", "snakes::a//b",
                                  "snakes:hello"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        PackageSpec.parse(text)
    assert "CHANNEL[/SUBCHANNEL]::PACKAGE" in exc.value.hint


def test_need_package() -> None:
    with pytest.raises(InvalidInput, match="no package given"):
        PackageSpec.parse("snakes", need_package=True)


def test_file_item_helpers_and_matching() -> None:
    item = {"ckey": "noarch/hello-1.0-0.conda", "name": "hello-1.0-0.conda",
            "metadata": {"index.json": {"name": "hello", "version": "1.0", "subdir": "noarch"}}}
    assert file_name(item) == "hello-1.0-0.conda"
    assert file_package(item) == "hello"
    assert file_platform(item) == "noarch"
    assert matches(PackageSpec("c", None, "hello", "1.0"), item)
    assert not matches(PackageSpec("c", None, "hello", "1.1"), item)
    assert matches(PackageSpec("c", None, "hello", "1.0", "hello-1.0-0.conda"), item)
    assert not matches(PackageSpec("c", None, "hello", "1.0", "other.conda"), item)
