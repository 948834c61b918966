"""The bisection shortcut of matching agrees with deciding every version on its own."""

from __future__ import annotations

import random
from collections import defaultdict

from taipan.domain import cve as rules
from taipan.domain import families
from taipan.services.cve_matching import _match_group


def test_bisection_agrees_with_one_by_one() -> None:
    rng = random.Random(7)
    key = families.get("conda").version_key
    letters = ["", "", "", "a", "t", "zg"]

    def version() -> str:
        return f"{rng.randint(0, 3)}.{rng.randint(0, 3)}.{rng.randint(0, 3)}{rng.choice(letters)}"

    versions = sorted({version() for _ in range(80)} | {"1.1.1", "1.1.1t", "1.1.1u"})
    by_version = {v: [(f"file-{v}", "linux-64")] for v in versions}
    specs = [("CVE-0", {"start_incl": "1.1.1", "end_excl": "1.1.1t"}), ("CVE-1", {"exact": "1.1.1t"})]
    for i in range(2, 300):
        spec = {}
        for bound in rng.sample(["start_incl", "start_excl", "end_incl", "end_excl"], rng.randint(0, 2)):
            spec[bound] = version()
        if rng.random() < 0.2:
            spec = {"exact": rng.choice(versions)}
        specs.append((f"CVE-{i}", spec))
    found: dict[str, set[str]] = defaultdict(set)
    _match_group("cpe", specs, by_version, key, found)
    for cve_id, spec in specs:
        expected = {f"file-{v}" for v in versions if rules.cpe_affected(spec, v, key, None)}
        assert {f for f, cves in found.items() if cve_id in cves} == expected, spec
    assert "CVE-0" in found["file-1.1.1"] and "CVE-0" not in found["file-1.1.1t"]
    assert found["file-1.1.1t"] >= {"CVE-1"}
