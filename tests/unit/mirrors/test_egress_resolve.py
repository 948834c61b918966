"""Names under the special-use domain ``invalid`` (RFC 6761) are answered negatively without a DNS
query: mirror creation accepts such a source (it does not resolve) whatever the machine's resolver
does, slow, failing, or answering them with an address."""

from __future__ import annotations

import socket

import pytest

from taipan.domain.egress import EgressPolicy
from taipan.upstreams import egress


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """socket.getaddrinfo, recording its names and answering every name with an internal address, as a
    resolver that rewrites failed names does."""
    asked: list[str] = []

    def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list[tuple]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.9.9", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.mark.parametrize("host", ["conda.example.invalid", "INVALID", "x.Invalid.", "[a.invalid]"])
def test_invalid_names_never_reach_the_resolver(lookups: list[str], host: str) -> None:
    with pytest.raises(socket.gaierror):
        egress.resolve(host)
    # At creation such a source is accepted (its runs check again), as any name that does not resolve.
    egress.check_url(EgressPolicy(), f"https://{host.strip('[]')}/c")
    assert lookups == []


@pytest.mark.parametrize("host", ["invalid.example", "example.invalids", "notinvalid"])
def test_other_names_are_resolved(lookups: list[str], host: str) -> None:
    assert egress.resolve(host) == ["10.9.9.9"]
    with pytest.raises(Exception, match="not a public address"):
        egress.check_url(EgressPolicy(), f"https://{host}/c")
    assert lookups == [host, host]
