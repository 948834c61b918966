"""A bare "GPL" license_family field is refined by the license string (GPL-2, LGPL, AGPL)."""

from __future__ import annotations

import pytest

from taipan.domain.filters import compile_filters, select
from taipan.domain.matchspec import license_family


@pytest.mark.parametrize(("license", "family", "want"), [
    ("GPL-2.0-or-later", "GPL", "gpl2"),
    ("GPLv2+", "GPL", "gpl2"),
    ("LGPL-2.1-or-later", "GPL", "lgpl"),
    ("AGPL-3.0-only", "GPL", "agpl"),
    ("GPL-3.0-only", "GPL", "gpl3"),
    ("", "GPL", "gpl3"),
    ("Custom", "GPL", "gpl3"),
    ("GPL-2.0-only", "GPL3", "gpl3"),  # an explicit family field wins
    ("MIT", "BSD", "bsd"),
])
def test_family(license: str, family: str, want: str) -> None:
    assert license_family({"license": license, "license_family": family}) == want


def test_excluding_gpl2_drops_a_gpl2_package_labelled_gpl() -> None:
    rec = {"name": "readline", "version": "8", "build": "0", "license": "GPL-2.0-or-later",
           "license_family": "GPL", "subdir": "linux-64"}
    sel = select({"linux-64": {"readline-8-0.conda": rec}}, compile_filters({"exclude_licenses": ["gpl2"]}))
    assert sel.kept["linux-64"] == {} and sel.counts["mirror_filtered"]["license"] == 1
