"""The egress policy of ``taipan.domain.egress`` applied to real connections.

Three checks, so that neither a redirect nor a DNS answer that changes between two lookups gets a
mirror to an address outside the policy:

* ``check_url`` at mirror creation: a source whose host already resolves outside the policy is
  refused with a 4xx;
* ``request_hook`` on every request the upstream client sends, redirect hops included;
* ``GuardedBackend`` at connection time: the socket is opened to the very address that was checked.

Behind a proxy the proxy makes the connection; the hook still checks each target host.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from taipan.domain.egress import EgressPolicy
from taipan.errors import InvalidInput, UpstreamError

if TYPE_CHECKING:  # imported on use (see taipan.upstreams.conda)
    import httpx


class EgressRefused(UpstreamError):
    code = "upstream_refused"
    status = 403


def _hint() -> str:
    return ("Only public addresses may be mirrored; an administrator can allow internal networks "
            'with the setting mirrors.allowed_networks (TAIPAN_MIRRORS__ALLOWED_NETWORKS=\'["10.0.0.0/8"]\')')


def resolve(host: str, port: int | None = None) -> list[str]:
    """Every address ``host`` resolves to (an IP literal resolves to itself). A name under the
    special-use domain ``invalid`` never resolves (RFC 6761, 6.4: resolvers should answer it negatively
    at once): it is refused here without a DNS query, which a slow, failing or rewriting resolver
    (search domains, sinkhole answers) could otherwise delay or answer with some address."""
    host = host.strip("[]")
    if host.rstrip(".").lower().rsplit(".", 1)[-1] == "invalid":
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_host(policy: EgressPolicy, host: str, port: int | None = None) -> list[str]:
    """Resolve ``host`` and raise ``EgressRefused`` unless every address is allowed; return them."""
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise UpstreamError(f"The upstream host {host!r} cannot be resolved",
                            "Check the source URL and the server's DNS", code="upstream_unreachable") from exc
    if policy.refused(addresses):
        raise EgressRefused(f"The upstream host {host!r} is not a public address", _hint())
    return addresses


def check_url(policy: EgressPolicy, url: str, what: str = "source") -> None:
    """At creation: refuse (400) a URL whose host resolves outside the policy now. A host that does
    not resolve yet is accepted; every run checks again."""
    parts = urlsplit(url)
    try:
        check_host(policy, parts.hostname or "", parts.port)
    except EgressRefused as exc:
        raise InvalidInput(f"The {what} URL's host {parts.hostname!r} is not a public address",
                           _hint(), code="source_not_allowed") from exc
    except UpstreamError:
        return


def request_hook(policy: EgressPolicy) -> Callable[[httpx.Request], None]:
    def hook(request: httpx.Request) -> None:
        check_host(policy, request.url.host, request.url.port)

    return hook


@functools.cache
def _guarded_backend() -> Any:
    """The class of ``GuardedBackend`` (made on first use, so that httpcore is imported only then)."""
    import httpcore

    class GuardedBackend(httpcore.SyncBackend):
        """Connects only to addresses the policy allows, to the address it checked (no second lookup)."""

        def __init__(self, policy: EgressPolicy) -> None:
            self.policy = policy

        def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                        local_address: str | None = None, socket_options: object = None) -> httpcore.NetworkStream:
            addresses = check_host(self.policy, host, port)
            last: Exception | None = None
            for address in addresses:
                try:
                    return super().connect_tcp(address, port, timeout, local_address,
                                               socket_options)  # type: ignore[arg-type]
                except httpcore.ConnectError as exc:  # try the host's next address, as a resolver would
                    last = exc
            assert last is not None
            raise last

    return GuardedBackend


def guarded_transport(policy: EgressPolicy) -> httpx.HTTPTransport:
    import httpx

    transport = httpx.HTTPTransport()
    # httpx builds its connection pool without a way to choose the network backend.
    pool = transport._pool
    assert hasattr(pool, "_network_backend")
    pool._network_backend = _guarded_backend()(policy)
    return transport
