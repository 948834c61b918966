"""The `conda-repo mirror` argument handling, without a server."""

from __future__ import annotations

import pytest

from taipan.cli.commands.mirror import filters_from_args, normalize
from taipan.cli.main import build_parser
from taipan.errors import InvalidInput


def parse(*argv: str):
    return build_parser().parse_args(["mirror", *argv])


def test_create_arguments_become_the_wire_filters() -> None:
    args = parse("--create", "m", "-c", "ch", "-s", "https://x/y", "--subdirs", "noarch, linux-64",
                 "--licenses", "-gpl3,mit", "--date_from", "2024-01-01", "--date_to", "2024-02-01",
                 "--include-dependencies", "--only_spec", "numpy >=2", "--only_spec", "scipy")
    assert args.mode is None and args.cron == "0 0 * * *" and args.type == "conda" and not args.run_now
    assert filters_from_args(args) == {
        "subdirs": ["noarch", "linux-64"], "include_licenses": ["mit"], "exclude_licenses": ["gpl3"],
        "only_specs": ["numpy >=2", "scipy"], "date_from": "2024-01-01", "date_to": "2024-02-01",
        "include_dependencies": True}


def test_a_leading_dash_license_list_is_a_value() -> None:
    assert parse("--create", "m", "--licenses", "-public_domain,-none,mit").licenses == "-public_domain,-none,mit"
    assert parse("--create", "m", "--licenses", "-gpl3").licenses == "-gpl3"


def test_only_spec_excludes_exclude_spec() -> None:
    with pytest.raises(InvalidInput):
        filters_from_args(parse("--create", "m", "--only_spec", "a", "--exclude_spec", "b"))
    with pytest.raises(InvalidInput):
        filters_from_args(parse("--create", "m", "--licenses", "beer"))


def test_both_api_shapes_normalize_alike() -> None:
    per_channel = {"mirror_id": "1", "mirror_name": "n", "mirror_type": "conda", "mirror_mode": "active",
                   "state": "running", "channel": "ch/sub"}
    global_item = {"id": "1", "name": "n", "type": "conda", "mode": "active", "state": "running",
                   "channel": {"name": "ch", "privacy": "public"}, "subchannel": {"name": "sub"}}
    a, b = normalize(per_channel), normalize(global_item)
    assert {k: a[k] for k in ("id", "name", "type", "mode", "state", "channel")} == \
        {k: b[k] for k in ("id", "name", "type", "mode", "state", "channel")}
