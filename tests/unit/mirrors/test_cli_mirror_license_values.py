"""`--licenses` values that start with "-" but are misspelt or upper case reach the license check."""

from __future__ import annotations

import pytest

from taipan.cli.commands.mirror import filters_from_args
from taipan.cli.main import build_parser
from taipan.errors import InvalidInput


def parse(*argv: str):
    return build_parser().parse_args(["mirror", *argv])


def test_upper_case_excluded_families_parse() -> None:
    args = parse("--create", "m", "-c", "ch", "--licenses", "-GPL3,MIT")
    assert filters_from_args(args)["exclude_licenses"] == ["gpl3"]
    assert filters_from_args(args)["include_licenses"] == ["mit"]


def test_unknown_excluded_family_gets_the_license_error() -> None:
    args = parse("--create", "m", "-c", "ch", "--licenses", "-gpl,mit")
    with pytest.raises(InvalidInput) as err:
        filters_from_args(args)
    assert err.value.code == "invalid_license" and "'gpl'" in err.value.message


def test_real_short_options_still_work() -> None:
    args = parse("--create", "m", "-c", "ch", "-s", "https://x/y", "--licenses", "-lgpl")
    assert args.channel == "ch" and args.licenses == "-lgpl"
