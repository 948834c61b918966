"""Where mirrors may fetch from: by default only public (globally routable) addresses.

A mirror makes the server open connections to the URLs it is given, so without a policy it could
be pointed at the server's own Redis or PostgreSQL, at a cloud metadata service (169.254.169.254)
or at hosts of the internal network. The setting ``mirrors.allowed_networks`` (a list of CIDRs)
allows internal upstreams explicitly. The policy is applied to the addresses a host name resolves
to, on every connection and every redirect hop (see ``taipan.upstreams.egress``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from taipan.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value).strip(), strict=False))
        except ValueError as exc:
            raise InvalidInput(f"mirrors.allowed_networks: {value!r} is not a network",
                               'Give CIDRs, e.g. ["10.0.0.0/8", "::1/128"]', code="invalid_setting") from exc
    return tuple(out)


@dataclass(frozen=True)
class EgressPolicy:
    """Public addresses always; others only inside ``allowed`` networks."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_setting(cls, values: Iterable[str]) -> EgressPolicy:
        return cls(parse_networks(values))

    def allows(self, address: str | IPAddress) -> bool:
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return True
        return ip.is_global and not ip.is_multicast

    def refused(self, addresses: Iterable[str]) -> list[str]:
        """The addresses of ``addresses`` that the policy does not allow."""
        return [a for a in addresses if not self.allows(a)]
